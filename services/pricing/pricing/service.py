"""The pricing service's bus methods (documented in docs/services.md)."""

from __future__ import annotations

import logging

from shop_contracts import Charge, OrderRef, Quote, merge

from pricing import payments, quotes
from pricing.models import Payment
from servicebus import Request, Service, ServiceError

logger = logging.getLogger("pricing")

pricing = Service("pricing")


@pricing.method(body=Quote)
def quote(request: Request) -> dict:
    """Price a basket: {items: [{sku, qty}]} -> {lines, subtotal/discount/total_cents, ...}."""
    items = merge(request.body.items)
    logger.debug("quote %s flags=%s", items, sorted(request.flags) or "-")
    return quotes.quote(items, request.flags)


@pricing.method(body=Charge)
def charge(request: Request) -> dict:
    """Charge a card once per order: {order_id, amount_cents, currency, card_number}."""
    body: Charge = request.body
    logger.debug(
        "charge order %s: %d %s on card *%s",
        body.order_id,
        body.amount_cents,
        body.currency,
        body.card_number[-4:],
    )
    return payments.charge(
        body.order_id, body.amount_cents, body.currency, body.card_number
    ).as_dict()


@pricing.method(body=OrderRef)
def refund(request: Request) -> dict:
    """Refund an order's charge (compensation): {order_id} -> payment."""
    logger.info("refund order %s", request.body.order_id)
    return payments.refund(request.body.order_id).as_dict()


@pricing.method("get_payment", body=OrderRef)
def get_payment(request: Request) -> dict:
    """An order's payment: {order_id} -> payment."""
    order_id = request.body.order_id
    logger.info("get_payment %s", order_id)
    payment = Payment.objects.filter(order_id=order_id).first()
    if payment is None:
        raise ServiceError("unknown_payment", f"no payment for {order_id}")
    return payment.as_dict()


@pricing.method()
async def ping(request: Request) -> dict:
    """Liveness over the bus: None -> {service, ok}."""
    logger.info("ping from %s", request.caller or "?")
    return {"service": "pricing", "ok": True}
