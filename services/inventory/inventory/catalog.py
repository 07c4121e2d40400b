"""The product catalogue: creating, changing and deleting products (replicated to others).

Every change goes through ``Product.save()``/``delete()`` so that it bumps the revision
and writes its ``inventory.product`` event in the same transaction. Stock is not part of
the catalogue (allocations.py moves it without events).
"""

from __future__ import annotations

from django.db import router, transaction
from django.db.models import ProtectedError

from inventory.models import Product
from servicebus import ServiceError


def atomic() -> transaction.Atomic:
    return transaction.atomic(using=router.db_for_write(Product))


def upsert_product(
    sku: str,
    *,
    name: str | None = None,
    list_price_cents: int | None = None,
    currency: str | None = None,
    stock: int | None = None,
) -> tuple[Product, bool]:
    """Create the product, or change the given fields of it; return (product, created).

    ``stock`` is only used when creating: an existing product's stock changes through
    allocations (or ``load_sample_data --reset``), never by a catalogue edit.
    """
    changes = {
        field: value
        for field, value in (
            ("name", name),
            ("list_price_cents", list_price_cents),
            ("currency", currency),
        )
        if value is not None
    }
    if changes.get("name") == "" or (currency is not None and len(currency) != 3):
        raise ServiceError("bad_product", "a product needs a name and a 3-letter currency")
    if min(list_price_cents or 0, stock or 0) < 0:
        raise ServiceError("bad_product", "list price and stock cannot be negative")
    with atomic():
        # Locked: two concurrent edits of one product apply one after the other.
        product = Product.objects.select_for_update().filter(sku=sku).first()
        if product is None:
            if "name" not in changes:
                raise ServiceError("bad_product", f"a new product {sku!r} needs a name")
            product = Product(sku=sku, stock=stock or 0, **changes)
            product.save()
            return product, True
        changed = [field for field, value in changes.items() if getattr(product, field) != value]
        if changed:
            for field in changed:
                setattr(product, field, changes[field])
            # Only these columns: a full save would write back the stock read above,
            # undoing allocations that committed meanwhile.
            product.save(update_fields=changed)
        return product, False


def delete_product(sku: str) -> Product:
    """Delete the product (replicas keep a tombstone); refused while allocations use it."""
    with atomic():
        product = Product.objects.select_for_update().filter(sku=sku).first()
        if product is None:
            raise ServiceError("unknown_sku", f"no product {sku!r}", {"sku": sku})
        try:
            product.delete()
        except ProtectedError as exc:
            raise ServiceError(
                "product_in_use", f"{sku} has allocations and cannot be deleted", {"sku": sku}
            ) from exc
    return product
