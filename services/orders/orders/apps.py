from django.apps import AppConfig


class OrdersConfig(AppConfig):
    """Orders and the saga that places them across inventory and pricing."""

    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"
