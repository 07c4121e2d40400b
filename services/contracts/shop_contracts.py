"""The shop's shared contract: the bodies its services' bus methods declare (msgspec types).

Not a service: a small library every example service may import (as services share a
schema package), so the shape of an order line is declared once. Each service stays the
only owner of its data and code; this module holds types only.

The patterns end in ``(?!\\n)$``: in Python, ``$`` alone also matches before a trailing
newline; the lookahead closes that and, unlike ``\\Z``, still reads as a JSON Schema
(ECMA-262) pattern in the schemas these types produce.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Annotated

import msgspec

MAX_LINES = 50
MAX_QTY = 1000

Sku = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,32}(?!\n)$")]
Qty = Annotated[int, msgspec.Meta(ge=1, le=MAX_QTY)]
OrderId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
CardNumber = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{12,19}(?!\n)$")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}(?!\n)$")]
Cents = Annotated[int, msgspec.Meta(ge=1)]


class Item(msgspec.Struct, frozen=True):
    """One order line: a quantity of one product."""

    sku: Sku
    qty: Qty


Items = Annotated[list[Item], msgspec.Meta(min_length=1, max_length=MAX_LINES)]


class OrderRef(msgspec.Struct, frozen=True):
    """``{order_id}``: release, finalise, refund, get_payment, get_order."""

    order_id: OrderId


class Allocate(msgspec.Struct, frozen=True):
    """inventory.allocate: hold stock for an order."""

    order_id: OrderId
    items: Items


class Quote(msgspec.Struct, frozen=True):
    """pricing.quote: price a basket."""

    items: Items


class Charge(msgspec.Struct, frozen=True):
    """pricing.charge: charge a card once per order."""

    order_id: OrderId
    amount_cents: Cents
    currency: Currency
    card_number: CardNumber


class PlaceOrder(msgspec.Struct, frozen=True):
    """POST /orders (HTTP): the card number may carry spaces, checked after they go."""

    items: Items
    card_number: str


def merge(items: Iterable[Item]) -> dict[str, int]:
    """``{sku: total qty}`` (an order may list a sku twice)."""
    total: Counter[str] = Counter()
    for item in items:
        total[item.sku] += item.qty
    return dict(total)
