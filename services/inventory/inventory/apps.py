from django.apps import AppConfig


class InventoryConfig(AppConfig):
    """Products and their stock; the source of truth for what can be sold."""

    name = "inventory"
    default_auto_field = "django.db.models.BigAutoField"
