"""``manage.py load_sample_data``: the demo's products, stock reset to its sample levels."""

from django.core.management.base import BaseCommand

from inventory.models import Product

SAMPLE_PRODUCTS = [
    ("MUG-01", "Channels coffee mug", 100),
    ("TEE-01", "Service bus t-shirt", 50),
    ("STK-01", "Sticker pack", 500),
    ("LTD-01", "Limited print (numbered)", 10),
]


class Command(BaseCommand):
    """Create or reset the sample products; safe to run again."""

    help = "Load the sample products and reset their stock."

    def handle(self, *args, **options) -> None:
        for sku, name, stock in SAMPLE_PRODUCTS:
            Product.objects.update_or_create(sku=sku, defaults={"name": name, "stock": stock})
        self.stdout.write(f"inventory: {len(SAMPLE_PRODUCTS)} sample products loaded")
