"""Orders: the row the saga starts from and finishes, with a log of the calls it made."""

import uuid

from django.db import models

from servicebus.outbox import ReplicaModel


def new_order_id() -> str:
    """A public order id, unique across databases (inventory and pricing key on it)."""
    return f"ord_{uuid.uuid4().hex[:20]}"


class Product(ReplicaModel):
    """A read-only copy of inventory's product, for display (names next to skus).

    Inventory owns it; ``servicebus_consume`` applies its ``inventory.product`` events.
    Orders never depend on it to take an order: inventory and pricing decide that.
    """

    id = models.BigIntegerField(primary_key=True)  # inventory's key
    sku = models.CharField(max_length=32, db_index=True)  # not unique: see pricing's copy
    name = models.CharField(max_length=200)

    class Replication:
        topic = "inventory.product"

    def __str__(self) -> str:
        return f"{self.sku} ({self.name})"


def product_names(skus) -> dict[str, str]:
    """{sku: name} from the replica, for the skus it holds."""
    # By key: should two rows briefly share a sku, the newer product's name wins.
    rows = Product.objects.filter(sku__in=set(skus)).order_by("id")
    return dict(rows.values_list("sku", "name"))


class Order(models.Model):
    """One order; ``status`` is pending while its saga runs, then confirmed or failed."""

    class Status(models.TextChoices):
        PENDING = "pending"
        CONFIRMED = "confirmed"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=32, default=new_order_id, editable=False)
    # Unique: a retried POST with the same key finds this order instead of making another.
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    items = models.JSONField()
    card_last4 = models.CharField(max_length=4)
    subtotal_cents = models.PositiveIntegerField(null=True)
    discount_cents = models.PositiveIntegerField(null=True)
    total_cents = models.PositiveIntegerField(null=True)
    currency = models.CharField(max_length=3, blank=True)
    payment_ref = models.CharField(max_length=64, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)
    saga_log = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    def as_dict(self) -> dict:
        """The order as the HTTP API and ``orders.get_order`` return it.

        Each item carries the product's ``name`` from the replica (None if unknown).
        """
        items = self.items if isinstance(self.items, list) else []
        names = product_names(item.get("sku") for item in items if isinstance(item, dict))
        return {
            "id": self.id,
            "status": self.status,
            "failure_code": self.failure_code or None,
            "failure_message": self.failure_message or None,
            "items": [
                {**item, "name": names.get(item.get("sku"))} if isinstance(item, dict) else item
                for item in items
            ],
            "card_last4": self.card_last4,
            "subtotal_cents": self.subtotal_cents,
            "discount_cents": self.discount_cents,
            "total_cents": self.total_cents,
            "currency": self.currency or None,
            "payment_ref": self.payment_ref or None,
            "correlation_id": self.correlation_id,
            "saga_log": self.saga_log,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }
