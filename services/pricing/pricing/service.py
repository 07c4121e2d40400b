"""The pricing service's bus methods (documented in docs/services.md)."""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any

from pricing import payments, quotes
from pricing.models import Payment
from servicebus import BadRequest, Request, Service, ServiceError

logger = logging.getLogger("pricing")

pricing = Service("pricing")

# fullmatch, ASCII digits only: `\d` takes Arabic-Indic digits, `$` a trailing newline.
CARD_NUMBER = re.compile(r"[0-9]{12,19}", re.ASCII)


def _field(body: Any, name: str, kind: type) -> Any:
    value = body.get(name) if isinstance(body, dict) else None
    if type(value) is not kind or (kind is str and not value):
        raise BadRequest(f"body needs {name!r} ({kind.__name__})")
    return value


def _items(body: Any) -> dict[str, int]:
    items = _field(body, "items", list)
    total: Counter[str] = Counter()
    for item in items:
        sku = item.get("sku") if isinstance(item, dict) else None
        qty = item.get("qty") if isinstance(item, dict) else None
        if not isinstance(sku, str) or type(qty) is not int or qty < 1:
            raise BadRequest(f"bad item {item!r}: needs a 'sku' string and a positive 'qty'")
        total[sku] += qty
    if not total:
        raise BadRequest("'items' is empty")
    return dict(total)


@pricing.method()
def quote(request: Request) -> dict:
    """Price a basket: {items: [{sku, qty}]} -> {lines, subtotal/discount/total_cents, ...}."""
    items = _items(request.body)
    logger.info("quote %s flags=%s", items, sorted(request.flags) or "-")
    return quotes.quote(items, request.flags)


@pricing.method()
def charge(request: Request) -> dict:
    """Charge a card once per order: {order_id, amount_cents, currency, card_number}."""
    order_id = _field(request.body, "order_id", str)
    amount = _field(request.body, "amount_cents", int)
    currency = _field(request.body, "currency", str)
    card = _field(request.body, "card_number", str)
    if amount < 1 or not CARD_NUMBER.fullmatch(card):
        raise BadRequest("'amount_cents' must be positive and 'card_number' 12-19 digits")
    logger.info("charge order %s: %d %s on card *%s", order_id, amount, currency, card[-4:])
    return payments.charge(order_id, amount, currency, card).as_dict()


@pricing.method()
def refund(request: Request) -> dict:
    """Refund an order's charge (compensation): {order_id} -> payment."""
    order_id = _field(request.body, "order_id", str)
    logger.info("refund order %s", order_id)
    return payments.refund(order_id).as_dict()


@pricing.method("get_payment")
def get_payment(request: Request) -> dict:
    """An order's payment: {order_id} -> payment."""
    order_id = _field(request.body, "order_id", str)
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
