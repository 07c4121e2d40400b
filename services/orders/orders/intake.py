"""From a POST body to a pending order row: validation, and one order per Idempotency-Key."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from django.db import IntegrityError, router, transaction
from django.utils.crypto import salted_hmac

from orders.models import Order
from servicebus import current_correlation_id

SKU = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
CARD_NUMBER = re.compile(r"^\d{12,19}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
MAX_LINES = 50
MAX_QTY = 1000


class InvalidOrder(ValueError):
    """The POST body or headers are not a valid order (HTTP 400)."""


@dataclass(frozen=True)
class OrderRequest:
    """A validated order request; the card number lives only here, never in a row."""

    items: list[dict]
    card_number: str

    def fingerprint(self) -> str:
        """A digest of the request, to spot an Idempotency-Key reused for another order.

        Keyed with SECRET_KEY: a plain hash of a card number could be reversed by brute force.
        """
        canonical = json.dumps([self.items, self.card_number], sort_keys=True)
        return salted_hmac("orders.idempotency", canonical, algorithm="sha256").hexdigest()


def atomic() -> transaction.Atomic:
    """A transaction on the database that holds orders.

    Not always "default": the embedded mode routes each service to its own database.
    """
    return transaction.atomic(using=router.db_for_write(Order))


def parse_order_request(raw: bytes) -> OrderRequest:
    """``{"items": [{"sku", "qty"}], "card_number"}`` -> OrderRequest, or InvalidOrder."""
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        raise InvalidOrder("the body is not JSON")
    if not isinstance(data, dict):
        raise InvalidOrder("the body must be a JSON object")
    items = data.get("items")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_LINES:
        raise InvalidOrder(f"'items' must be a list of 1-{MAX_LINES} {{sku, qty}} objects")
    clean = []
    for item in items:
        sku = item.get("sku") if isinstance(item, dict) else None
        qty = item.get("qty") if isinstance(item, dict) else None
        if not isinstance(sku, str) or not SKU.match(sku):
            raise InvalidOrder(f"bad sku in {item!r}")
        if type(qty) is not int or not 0 < qty <= MAX_QTY:
            raise InvalidOrder(f"'qty' must be an integer from 1 to {MAX_QTY} in {item!r}")
        clean.append({"sku": sku, "qty": qty})
    card = data.get("card_number")
    if not isinstance(card, str) or not CARD_NUMBER.match(card.replace(" ", "")):
        raise InvalidOrder("'card_number' must be a string of 12-19 digits")
    return OrderRequest(items=clean, card_number=card.replace(" ", ""))


def validate_idempotency_key(key: str | None) -> str | None:
    """The Idempotency-Key header, None when absent; InvalidOrder when malformed."""
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise InvalidOrder("Idempotency-Key must be 1-255 printable ASCII characters")
    return key


def open_order(request: OrderRequest, key: str | None) -> tuple[Order, bool]:
    """Make the pending order row; with a key already used, return that order instead.

    Returns (order, created). The unique key decides between concurrent duplicates:
    one insert wins, the others read the winner's row.
    """
    fields = {
        "items": request.items,
        "card_last4": request.card_number[-4:],
        "correlation_id": current_correlation_id() or "",
        "idempotency_key": key,
        "request_fingerprint": request.fingerprint() if key else "",
    }
    if key is None:
        return Order.objects.create(**fields), True
    try:
        with atomic():
            return Order.objects.create(**fields), True
    except IntegrityError:
        return Order.objects.get(idempotency_key=key), False
