"""The inventory service's bus methods (documented in docs/services.md)."""

from __future__ import annotations

import logging

from shop_contracts import Allocate, OrderRef, merge

from inventory import allocations, catalog
from inventory.models import Product
from servicebus import BadRequest, Request, Service, ServiceError

logger = logging.getLogger("inventory")

inventory = Service("inventory")


@inventory.method(body=Allocate)
def allocate(request: Request) -> dict:
    """Hold stock for an order: {order_id, items: [{sku, qty}]} -> allocation."""
    body: Allocate = request.body
    items = merge(body.items)
    logger.debug("allocate %s for order %s", items, body.order_id)
    return allocations.allocate(body.order_id, items)


@inventory.method(body=OrderRef)
def release(request: Request) -> dict:
    """Give an order's stock back (compensation): {order_id} -> allocation."""
    logger.info("release order %s", request.body.order_id)
    return allocations.release(request.body.order_id)


@inventory.method(body=OrderRef)
def finalise(request: Request) -> dict:
    """Commit an order's allocation: {order_id} -> {order_id, status}."""
    logger.debug("finalise order %s", request.body.order_id)
    return allocations.finalise(request.body.order_id)


@inventory.method("get_product")
def get_product(request: Request) -> dict:
    """One product: {sku} -> {sku, name, list_price_cents, currency, stock}."""
    sku = request.body.get("sku") if isinstance(request.body, dict) else None
    logger.info("get_product %s", sku)
    product = Product.objects.filter(sku=sku).first() if isinstance(sku, str) else None
    if product is None:
        raise ServiceError("unknown_sku", f"no product {sku!r}", {"sku": sku})
    return product.as_dict()


@inventory.method("list_products")
def list_products(request: Request) -> dict:
    """Every product: None -> {products: [product]}."""
    logger.info("list_products")
    return {"products": [product.as_dict() for product in Product.objects.all()]}


@inventory.method("update_product")
def update_product(request: Request) -> dict:
    """Create or change a product: {sku, name?, list_price_cents?, currency?, stock?}.

    -> {product, created}. ``stock`` counts only for a new product. The change reaches
    pricing's and orders' replicas as an ``inventory.product`` event.
    """
    body = request.body if isinstance(request.body, dict) else {}
    sku = body.get("sku")
    if not isinstance(sku, str) or not 0 < len(sku) <= 32:
        raise BadRequest("body needs a 'sku' string of 1-32 characters")
    fields = {}
    for name, kind in (("name", str), ("list_price_cents", int), ("currency", str), ("stock", int)):
        value = body.get(name)
        if value is not None and (type(value) is not kind or (kind is int and value < 0)):
            raise BadRequest(
                f"{name!r} must be a {'non-negative ' if kind is int else ''}{kind.__name__}"
            )
        fields[name] = value
    logger.info("update_product %s %s", sku, {k: v for k, v in fields.items() if v is not None})
    product, created = catalog.upsert_product(sku, **fields)
    return {"product": product.as_dict(), "created": created}


@inventory.method("delete_product")
def delete_product(request: Request) -> dict:
    """Delete a product: {sku} -> {sku, deleted: true}; replicas drop it (tombstone)."""
    sku = request.body.get("sku") if isinstance(request.body, dict) else None
    if not isinstance(sku, str):
        raise BadRequest("body needs a 'sku' string")
    logger.info("delete_product %s", sku)
    catalog.delete_product(sku)
    return {"sku": sku, "deleted": True}


@inventory.method()
async def ping(request: Request) -> dict:
    """Liveness over the bus: None -> {service, ok}."""
    logger.info("ping from %s", request.caller or "?")
    return {"service": "inventory", "ok": True}
