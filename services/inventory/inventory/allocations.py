"""Allocating stock to orders: correct under concurrency, idempotent per order id.

Stock moves only through a conditional ``UPDATE ... SET stock = stock - n WHERE stock >= n``
whose row count says whether it happened: two workers can never both take the last unit,
whatever the database's isolation level.
"""

from __future__ import annotations

from collections import Counter

from django.db import router, transaction
from django.db.models import F

from inventory.models import Allocation, AllocationLine, Product
from servicebus import ServiceError

Status = Allocation.Status


def atomic() -> transaction.Atomic:
    """A transaction on the database that holds allocations.

    Not always "default": the embedded mode routes each service to its own database.
    """
    return transaction.atomic(using=router.db_for_write(Allocation))


def allocate(order_id: str, items: dict[str, int]) -> Allocation:
    """Take ``items`` ({sku: qty}) out of stock for ``order_id``, all or nothing."""
    with atomic():
        allocation, created = Allocation.objects.get_or_create(order_id=order_id)
        if not created:
            if allocation.status == Status.RELEASED:
                # Released (perhaps before this request arrived, after a timeout): a late
                # allocate must not take stock for an order that already gave up.
                raise ServiceError("allocation_released", f"order {order_id} was released")
            return allocation  # a retry: the first call's allocation stands
        product_ids = dict(Product.objects.filter(sku__in=items).values_list("sku", "pk"))
        unknown = sorted(items.keys() - product_ids.keys())
        if unknown:
            raise ServiceError("unknown_sku", f"no product {unknown[0]!r}", {"sku": unknown[0]})
        for sku, qty in sorted(items.items()):  # sorted: the same lock order everywhere
            pk = product_ids[sku]
            taken = Product.objects.filter(pk=pk, stock__gte=qty).update(stock=F("stock") - qty)
            if not taken:
                # Raising rolls back the whole transaction: earlier lines and the row.
                available = Product.objects.values_list("stock", flat=True).get(pk=pk)
                raise ServiceError(
                    "out_of_stock",
                    f"{sku}: {qty} requested, {available} in stock",
                    {"sku": sku, "requested": qty, "available": available},
                )
            AllocationLine.objects.create(allocation=allocation, product_id=pk, qty=qty)
    return allocation


def release(order_id: str) -> Allocation:
    """Give the order's stock back; idempotent, and fences off a late ``allocate``."""
    with atomic():
        allocation, created = Allocation.objects.select_for_update().get_or_create(
            order_id=order_id, defaults={"status": Status.RELEASED}
        )
        if created or allocation.status == Status.RELEASED:
            return allocation
        for line in allocation.lines.all():
            Product.objects.filter(pk=line.product_id).update(stock=F("stock") + line.qty)
        allocation.status = Status.RELEASED
        allocation.save(update_fields=["status", "updated_at"])
    return allocation


def finalise(order_id: str) -> Allocation:
    """Commit the order's allocation (the goods are sold); idempotent."""
    with atomic():
        allocation = Allocation.objects.select_for_update().filter(order_id=order_id).first()
        if allocation is None:
            raise ServiceError("unknown_allocation", f"nothing allocated for {order_id}")
        if allocation.status == Status.RELEASED:
            raise ServiceError("allocation_released", f"order {order_id} was released")
        if allocation.status == Status.ALLOCATED:
            allocation.status = Status.FINALISED
            allocation.save(update_fields=["status", "updated_at"])
    return allocation


def merge_items(items: list[tuple[str, int]]) -> dict[str, int]:
    """Sum quantities per sku (an order may list a sku twice)."""
    total: Counter[str] = Counter()
    for sku, qty in items:
        total[sku] += qty
    return dict(total)
