"""``manage.py load_sample_data``: the demo's prices and discount rules."""

from django.core.management.base import BaseCommand

from pricing.models import Discount, Price

SAMPLE_PRICES = {"MUG-01": 1200, "TEE-01": 2500, "STK-01": 300, "LTD-01": 9900}
# bulk_discount: 10% off a line of 5 or more units, only for requests flagged with it.
SAMPLE_DISCOUNTS = [("bulk_discount", 10, 5, "bulk_discount")]


class Command(BaseCommand):
    """Create or reset the sample prices and discounts; safe to run again."""

    help = "Load the sample prices and discount rules."

    def handle(self, *args, **options) -> None:
        for sku, cents in SAMPLE_PRICES.items():
            Price.objects.update_or_create(
                sku=sku, defaults={"unit_price_cents": cents, "currency": "EUR"}
            )
        for code, percent, min_qty, flag in SAMPLE_DISCOUNTS:
            Discount.objects.update_or_create(
                code=code, defaults={"percent_off": percent, "min_qty": min_qty, "flag": flag}
            )
        self.stdout.write(
            f"pricing: {len(SAMPLE_PRICES)} prices, {len(SAMPLE_DISCOUNTS)} discounts loaded"
        )
