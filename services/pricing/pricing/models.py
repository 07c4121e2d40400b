"""Pricing data: a replica of inventory's products (list prices), discount rules, and
one payment per order."""

from django.db import models

from servicebus.outbox import ReplicaModel


class Product(ReplicaModel):
    """A read-only copy of inventory's product: the list price quotes start from.

    Inventory owns it; ``servicebus_consume`` applies its ``inventory.product`` events
    here (by revision). Never edit it by hand: ``servicebus_diff`` repairs what differs.
    """

    id = models.BigIntegerField(primary_key=True)  # inventory's key
    # Not unique: events for different products may apply out of order (a sku moved from
    # a deleted product to a new one); unique at the source is what counts.
    sku = models.CharField(max_length=32, db_index=True)
    name = models.CharField(max_length=200)
    list_price_cents = models.PositiveIntegerField()  # integer cents: no float money
    currency = models.CharField(max_length=3, default="EUR")

    class Replication:
        topic = "inventory.product"

    def __str__(self) -> str:
        return f"{self.sku}: {self.list_price_cents} {self.currency} cents"


class Discount(models.Model):
    """A percentage off a line of at least ``min_qty`` units.

    With ``flag`` set, the rule applies only to requests carrying that feature flag.
    """

    code = models.CharField(max_length=32, unique=True)
    percent_off = models.PositiveSmallIntegerField()
    min_qty = models.PositiveIntegerField(default=1)
    flag = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"{self.code}: {self.percent_off}% off {self.min_qty}+"


class Payment(models.Model):
    """The payment of one order; the unique order id is what makes charges idempotent."""

    class Status(models.TextChoices):
        PENDING = "pending"  # the processor is being asked (inside the creating transaction)
        CHARGED = "charged"
        REFUNDED = "refunded"
        VOIDED = "voided"  # refunded before any charge: fences off a late charge

    order_id = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    amount_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="EUR")
    card_last4 = models.CharField(max_length=4, blank=True)
    processor_ref = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"payment for {self.order_id}: {self.status}"

    def as_dict(self) -> dict:
        """The payment as it crosses the bus (never the card number)."""
        return {
            "order_id": self.order_id,
            "status": self.status,
            "amount_cents": self.amount_cents,
            "currency": self.currency,
            "card_last4": self.card_last4,
            "processor_ref": self.processor_ref,
        }
