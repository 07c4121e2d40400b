"""From a POST body to a pending order row: validation, and one order per Idempotency-Key."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import msgspec
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, router, transaction
from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from shop_contracts import PlaceOrder

from orders.http_errors import ClientError
from orders.models import Order
from servicebus import current_correlation_id

# Exact, ASCII-only patterns, used with fullmatch: `$` would accept a trailing newline,
# and `\d` Arabic-Indic or fullwidth digits. Lines are shop_contracts.Item (one type for
# the HTTP body, inventory.allocate and pricing.quote).
CARD_NUMBER = re.compile(r"[0-9]{12,19}", re.ASCII)
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}", re.ASCII)  # printable ASCII, no spaces
# 50 lines take ~3 KB: anything far larger is not an order, and is refused unread.
MAX_BODY_BYTES = 64 * 1024


class InvalidOrder(ClientError):
    """The POST body or headers are not a valid order (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_request", message)


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


def read_json_body(request: HttpRequest) -> bytes:
    """The raw body of a JSON request: 415 for another type, 413 past MAX_BODY_BYTES."""
    charset = request.content_params.get("charset", "utf-8").lower()
    if request.content_type != "application/json" or charset not in ("utf-8", "utf8"):
        raise ClientError("unsupported_media_type", "send the order as application/json")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    too_large = ClientError("payload_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    if declared > MAX_BODY_BYTES:
        raise too_large
    try:
        raw = request.body
    except RequestDataTooBig:  # Django's own, larger limit
        raise too_large
    if len(raw) > MAX_BODY_BYTES:  # a chunked body declares no length
        raise too_large
    return raw


def parse_order_request(raw: bytes) -> OrderRequest:
    """``{"items": [{"sku", "qty"}], "card_number"}`` -> OrderRequest, or InvalidOrder.

    Messages name the field (``items[2].qty``) and never echo the input back.
    """
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise InvalidOrder("the body is nested too deeply")
    except ValueError:  # not UTF-8, not JSON, or an integer with thousands of digits
        raise InvalidOrder("the body is not JSON")
    if not isinstance(data, dict):
        raise InvalidOrder("the body must be a JSON object")
    try:
        order = msgspec.convert(data, PlaceOrder, strict=True)
    except msgspec.ValidationError as exc:
        # "Expected `int`, got `str` - at `$.items[0].qty`": the field, never the input.
        raise InvalidOrder(f"invalid order: {exc}")
    card = order.card_number.replace(" ", "")
    if not CARD_NUMBER.fullmatch(card):
        raise InvalidOrder("'card_number' must be a string of 12-19 digits (0-9)")
    clean = [{"sku": item.sku, "qty": item.qty} for item in order.items]
    return OrderRequest(items=clean, card_number=card)


def validate_idempotency_key(key: str | None) -> str | None:
    """The Idempotency-Key header, None when absent; InvalidOrder when malformed."""
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(key):
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
