"""``manage.py load_sample_data``: the demo's discount rules.

List prices are inventory's (they arrive in the replica of its products).
"""

from django.core.management.base import BaseCommand

from pricing.models import Discount

# bulk_discount: 10% off a line of 5 or more units, only for requests flagged with it.
SAMPLE_DISCOUNTS = [("bulk_discount", 10, 5, "bulk_discount")]


class Command(BaseCommand):
    """Create or reset the sample discounts; safe to run again."""

    help = "Load the sample discount rules."

    def handle(self, *args, **options) -> None:
        for code, percent, min_qty, flag in SAMPLE_DISCOUNTS:
            Discount.objects.update_or_create(
                code=code, defaults={"percent_off": percent, "min_qty": min_qty, "flag": flag}
            )
        self.stdout.write(f"pricing: {len(SAMPLE_DISCOUNTS)} discounts loaded")
