"""The orders service's bus methods (documented in docs/services.md)."""

from __future__ import annotations

import logging

from shop_contracts import OrderRef

from orders.models import Order
from servicebus import Request, Service, ServiceError

logger = logging.getLogger("orders")

orders = Service("orders")


@orders.method("get_order", body=OrderRef)
def get_order(request: Request) -> dict:
    """One order: {order_id} -> order (as GET /orders/<id> returns it)."""
    order_id = request.body.order_id
    logger.info("get_order %s", order_id)
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise ServiceError("unknown_order", f"no order {order_id}")
    return order.as_dict()


@orders.method()
async def ping(request: Request) -> dict:
    """Liveness over the bus: None -> {service, ok}."""
    logger.info("ping from %s", request.caller or "?")
    return {"service": "orders", "ok": True}
