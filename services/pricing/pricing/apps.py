from django.apps import AppConfig


class PricingConfig(AppConfig):
    """Prices, discounts and payments; the only service that touches card numbers."""

    name = "pricing"
    default_auto_field = "django.db.models.BigAutoField"
