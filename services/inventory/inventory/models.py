"""Inventory data: products with their stock, and the allocations orders hold on it."""

from django.db import models


class Product(models.Model):
    """A sellable product; ``stock`` is what is left to allocate (never negative)."""

    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    stock = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=models.Q(stock__gte=0), name="stock_not_negative")
        ]

    def __str__(self) -> str:
        return f"{self.sku} ({self.stock} in stock)"

    def as_dict(self) -> dict:
        """The product as it crosses the bus."""
        return {"sku": self.sku, "name": self.name, "stock": self.stock}


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
