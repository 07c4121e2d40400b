"""``manage.py load_sample_data``: the demo's products (``--reset`` restores their stock)."""

from django.core.management.base import BaseCommand

from inventory.models import Product

SAMPLE_PRODUCTS = [
    ("MUG-01", "Channels coffee mug", 100),
    ("TEE-01", "Service bus t-shirt", 50),
    ("STK-01", "Sticker pack", 500),
    ("LTD-01", "Limited print (numbered)", 10),
]


class Command(BaseCommand):
    """Create the missing sample products; safe to run at every start (docker-compose)."""

    help = "Load the sample products; --reset also restores their stock."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reset", action="store_true", help="restore sample stock levels")

    def handle(self, *args, **options) -> None:
        for sku, name, stock in SAMPLE_PRODUCTS:
            if options["reset"]:
                Product.objects.update_or_create(sku=sku, defaults={"name": name, "stock": stock})
            else:
                Product.objects.get_or_create(sku=sku, defaults={"name": name, "stock": stock})
        self.stdout.write(f"inventory: {len(SAMPLE_PRODUCTS)} sample products loaded")
