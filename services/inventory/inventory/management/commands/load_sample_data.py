"""``manage.py load_sample_data``: the demo's products (``--reset`` restores their stock)."""

from django.core.management.base import BaseCommand

from inventory import catalog
from inventory.models import Product

# sku, name, list price (cents, EUR), stock. Inventory owns the list prices: pricing and
# orders get them (and the names) through replication.
SAMPLE_PRODUCTS = [
    ("MUG-01", "Channels coffee mug", 1200, 100),
    ("TEE-01", "Service bus t-shirt", 2500, 50),
    ("STK-01", "Sticker pack", 300, 500),
    ("LTD-01", "Limited print (numbered)", 9900, 10),
]


class Command(BaseCommand):
    """Create the missing sample products; safe to run at every start (docker-compose).

    Products go through ``Product.save()``, so each new one is an ``inventory.product``
    event for the replicas; an existing product is left as it is (no event), except a
    list price of 0 (a database from before inventory owned prices) gets its sample price.
    """

    help = "Load the sample products; --reset also restores their stock."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reset", action="store_true", help="restore sample stock levels")

    def handle(self, *args, **options) -> None:
        for sku, name, price, stock in SAMPLE_PRODUCTS:
            existing = Product.objects.filter(sku=sku).first()
            if existing is None or options["reset"]:
                # Writes (and publishes) only what differs from the sample.
                catalog.upsert_product(
                    sku, name=name, list_price_cents=price, currency="EUR", stock=stock
                )
            elif existing.list_price_cents == 0:
                catalog.upsert_product(sku, list_price_cents=price)
            if options["reset"]:
                # Stock is not replicated: a plain UPDATE, no event (see Product).
                Product.objects.filter(sku=sku).update(stock=stock)
        self.stdout.write(f"inventory: {len(SAMPLE_PRODUCTS)} sample products loaded")
