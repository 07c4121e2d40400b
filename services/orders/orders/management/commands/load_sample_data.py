"""``manage.py load_sample_data``: orders start empty; present so every service has it."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    """Nothing to load: orders are made through POST /orders."""

    help = "Load sample data (orders has none: orders are placed through the API)."

    def handle(self, *args, **options) -> None:
        self.stdout.write("orders: no sample data (place orders with POST /orders)")
