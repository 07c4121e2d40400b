"""``manage.py delete_product SKU``: delete a product; replicas drop it (tombstone)."""

from django.core.management.base import BaseCommand, CommandError

from inventory import catalog
from servicebus import ServiceError


class Command(BaseCommand):
    """Delete a product that no allocation uses."""

    help = "Delete a product; the delete reaches the replicas as an event."

    def add_arguments(self, parser) -> None:
        parser.add_argument("sku")

    def handle(self, *args, **options) -> None:
        try:
            product = catalog.delete_product(options["sku"])
        except ServiceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"deleted {product.sku} (revision {product.revision})")
