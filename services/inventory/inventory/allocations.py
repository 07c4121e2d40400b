"""Allocating stock to orders: correct under concurrency, idempotent per order id.

Stock moves only through a conditional ``UPDATE ... SET stock = stock - n WHERE stock >= n``
whose row count says whether it happened: two workers can never both take the last unit,
whatever the database's isolation level.
"""

from __future__ import annotations

from django.db import IntegrityError, router, transaction
from django.db.models import F
from django.utils import timezone

from inventory.models import Allocation, AllocationLine, Product
from servicebus import ServiceError

Status = Allocation.Status


def atomic() -> transaction.Atomic:
    """A transaction on the database that holds allocations.

    Not always "default": the embedded mode routes each service to its own database.
    """
    return transaction.atomic(using=router.db_for_write(Allocation))


def allocate(order_id: str, items: dict[str, int]) -> dict:
    """Take ``items`` ({sku: qty}) out of stock for ``order_id``, all or nothing.

    Returns the allocation as it crosses the bus. Idempotent: a repeat returns the first
    allocation, and an order already released is refused.
    """
    try:
        return _allocate_new(order_id, items)
    except IntegrityError:
        # The order has its row already (a retry, or a concurrent duplicate that won).
        pass
    allocation = Allocation.objects.get(order_id=order_id)
    if allocation.status == Status.RELEASED:
        # Released (perhaps before this request arrived, after a timeout): a late
        # allocate must not take stock for an order that already gave up.
        raise ServiceError("allocation_released", f"order {order_id} was released")
    return allocation.as_dict()  # the first call's allocation stands


def _allocate_new(order_id: str, items: dict[str, int]) -> dict:
    # The common case in the fewest statements: insert the row first (the unique order id
    # decides between duplicates), no savepoint, no re-read for the reply.
    with atomic():
        allocation = Allocation.objects.create(order_id=order_id)
        product_ids = dict(Product.objects.filter(sku__in=items).values_list("sku", "pk"))
        unknown = sorted(items.keys() - product_ids.keys())
        if unknown:
            raise ServiceError("unknown_sku", f"no product {unknown[0]!r}", {"sku": unknown[0]})
        lines = []
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
            lines.append(AllocationLine(allocation=allocation, product_id=pk, qty=qty))
        AllocationLine.objects.bulk_create(lines)
    return {
        "order_id": order_id,
        "status": allocation.status,
        "lines": [{"sku": sku, "qty": qty} for sku, qty in sorted(items.items())],
    }


def release(order_id: str) -> dict:
    """Give the order's stock back; idempotent, and fences off a late ``allocate``."""
    with atomic():
        allocation, created = Allocation.objects.select_for_update().get_or_create(
            order_id=order_id, defaults={"status": Status.RELEASED}
        )
        if not created and allocation.status != Status.RELEASED:
            for line in allocation.lines.all():
                Product.objects.filter(pk=line.product_id).update(stock=F("stock") + line.qty)
            allocation.status = Status.RELEASED
            allocation.save(update_fields=["status", "updated_at"])
    return allocation.as_dict()


def finalise(order_id: str) -> dict:
    """Commit the order's allocation (the goods are sold); idempotent.

    Returns ``{order_id, status}``: one conditional UPDATE in the common case.
    """
    finalised = Allocation.objects.filter(order_id=order_id, status=Status.ALLOCATED).update(
        status=Status.FINALISED, updated_at=timezone.now()
    )
    if not finalised:
        status = Allocation.objects.filter(order_id=order_id).values_list("status", flat=True)
        current = status.first()
        if current is None:
            raise ServiceError("unknown_allocation", f"nothing allocated for {order_id}")
        if current == Status.RELEASED:
            raise ServiceError("allocation_released", f"order {order_id} was released")
    return {"order_id": order_id, "status": Status.FINALISED.value}
