"""``manage.py set_product SKU [--name N] [--price CENTS] [--currency C] [--stock N]``."""

from django.core.management.base import BaseCommand, CommandError

from inventory import catalog
from servicebus import ServiceError


class Command(BaseCommand):
    """Create or change a product; the change reaches the replicas as an event."""

    help = "Create or change a product (name, list price); --stock only for a new one."

    def add_arguments(self, parser) -> None:
        parser.add_argument("sku")
        parser.add_argument("--name")
        parser.add_argument("--price", type=int, dest="list_price_cents", help="list price, cents")
        parser.add_argument("--currency")
        parser.add_argument("--stock", type=int, help="initial stock of a new product")

    def handle(self, *args, **options) -> None:
        try:
            product, created = catalog.upsert_product(
                options["sku"],
                name=options["name"],
                list_price_cents=options["list_price_cents"],
                currency=options["currency"],
                stock=options["stock"],
            )
        except ServiceError as exc:
            raise CommandError(str(exc)) from exc
        verb = "created" if created else "saved"
        self.stdout.write(f"{verb} {product.sku} (revision {product.revision})")
