"""Inventory data: products with their stock, and the allocations orders hold on it."""

from django.db import models

from servicebus.outbox import SourceModel


class Product(SourceModel):
    """A sellable product; ``stock`` is what is left to allocate (never negative).

    Inventory owns the catalogue: sku, name and list price are replicated to pricing
    (which quotes from them) and orders (which shows names) through the outbox; every
    ``save()``/``delete()`` bumps ``revision`` and writes an ``inventory.product`` event.

    ``stock`` is deliberately not replicated and changes without an event: it moves on
    every order, no other service needs it, and allocation changes it with a conditional
    ``QuerySet.update(stock=F("stock") - n)`` (see allocations.py), which bypasses
    ``save()`` and so publishes nothing, bumps no revision and keeps its atomic row-count
    check. Catalogue edits must therefore ``save(update_fields=[...])`` without ``stock``
    (see catalog.py): a full ``save()`` would write back a stock value read earlier.
    """

    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    # The list price, in integer cents; discounts are pricing's business.
    list_price_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="EUR")
    stock = models.PositiveIntegerField(default=0)

    class Replication:
        topic = "inventory.product"
        # What replicas get (never stock: see above).
        fields = ["id", "sku", "name", "list_price_cents", "currency"]

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=models.Q(stock__gte=0), name="stock_not_negative")
        ]

    def __str__(self) -> str:
        return f"{self.sku} ({self.stock} in stock)"

    def as_dict(self) -> dict:
        """The product as it crosses the bus."""
        return {
            "sku": self.sku,
            "name": self.name,
            "list_price_cents": self.list_price_cents,
            "currency": self.currency,
            "stock": self.stock,
        }


class Allocation(models.Model):
    """The stock one order holds; one row per order id makes every operation idempotent."""

    class Status(models.TextChoices):
        ALLOCATED = "allocated"
        FINALISED = "finalised"
        RELEASED = "released"

    order_id = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ALLOCATED)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"allocation for {self.order_id}: {self.status}"

    def as_dict(self) -> dict:
        """The allocation as it crosses the bus."""
        return {
            "order_id": self.order_id,
            "status": self.status,
            "lines": [
                {"sku": line.product.sku, "qty": line.qty}
                for line in self.lines.select_related("product")
            ],
        }


class AllocationLine(models.Model):
    """Units of one product held by an allocation."""

    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    qty = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.qty} x {self.product_id} for {self.allocation_id}"
