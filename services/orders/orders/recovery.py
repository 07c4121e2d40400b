"""Finishing orders a crash left ``pending``: forward when the card was charged, else undo.

The saga writes its outcome once, at the end (``OrderSaga.settle``); an orders process
killed before that leaves the row ``pending`` with whatever steps it had done at
inventory and pricing. Every step is keyed by the order id and idempotent there, so a
recovery pass can ask and act without knowing how far the saga got:

- pricing has a ``charged`` payment: the saga got past the charge. Finalise the
  allocation (idempotent) and confirm the order with the charged amount. Should the
  allocation be gone (released), refund and fail instead.
- otherwise the card was not charged (or the charge was refunded): refund (which voids
  the order's payment and so refuses a charge still in flight) and release (which
  refuses an allocate still in flight), then fail the order as ``interrupted``.

Only orders pending for longer than a saga can take are touched (``ORDERS_RECOVER_AFTER``
seconds, default 120), and the outcome is written only while the row is still pending:
a slow saga that ends meanwhile keeps its own outcome, and two recovery loops racing
write one. An undo that cannot get through leaves the order pending for the next pass.
"""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.utils import timezone

from orders.models import Order
from orders.saga import INVENTORY, PRICING, OrderSaga, Step
from servicebus import RemoteError, ServiceBusError, ServiceError

# A handler's error: RemoteError over the bus, ServiceError from an in-process call.
HANDLER_ERRORS = (RemoteError, ServiceError)

logger = logging.getLogger("orders.recovery")

INTERRUPTED = "interrupted"


def recover_after() -> float:
    """Seconds an order may stay pending before recovery takes it."""
    return float(getattr(settings, "ORDERS_RECOVER_AFTER", 120))


def stale_orders(older_than: float, limit: int = 100) -> list[Order]:
    """Pending orders created more than ``older_than`` seconds ago, oldest first."""
    cutoff = timezone.now() - datetime.timedelta(seconds=older_than)
    pending = Order.objects.filter(status=Order.Status.PENDING, created_at__lt=cutoff)
    return list(pending.order_by("created_at")[:limit])


def recover_pending(older_than: float | None = None, limit: int = 100) -> dict[str, int]:
    """One pass over stale pending orders; counts by outcome (confirmed, failed, left)."""
    counts = {"confirmed": 0, "failed": 0, "left": 0}
    for order in stale_orders(recover_after() if older_than is None else older_than, limit):
        try:
            status = recover(order).status
        except ServiceBusError as exc:  # the bus or a service is down: try next pass
            logger.warning("order %s: recovery postponed: %s", order.id, exc.code)
            status = Order.Status.PENDING
        except Exception:
            logger.exception("order %s: recovery failed", order.id)
            status = Order.Status.PENDING
        counts[status if status != Order.Status.PENDING else "left"] += 1
    return counts


def recover(order: Order) -> Order:
    """Finish or undo one pending order (see the module docstring); idempotent."""
    saga = OrderSaga(order, card_number="")
    order.saga_log = [
        *order.saga_log,
        {"step": "recovery", "call": "-", "outcome": "start", "ms": 0},
    ]
    try:
        payment = saga.call(Step("check payment", PRICING, "get_payment", {"order_id": order.id}))
    except HANDLER_ERRORS as exc:
        if exc.code != "unknown_payment":
            raise
        payment = None
    if payment is not None and payment.get("status") == "charged":
        try:
            saga.call(Step("finalise inventory", INVENTORY, "finalise", {"order_id": order.id}))
        except HANDLER_ERRORS as exc:
            if exc.code not in ("allocation_released", "unknown_allocation"):
                raise
            return undo(saga, f"charged, but the allocation is gone ({exc.code}): refunded")
        order.total_cents = payment["amount_cents"]
        order.currency = payment["currency"]
        order.payment_ref = payment["processor_ref"]
        logger.info("order %s: recovered forward (charged %s)", order.id, order.total_cents)
        return saga.settle()
    return undo(saga, "the order was interrupted before it was charged, and undone")


def undo(saga: OrderSaga, message: str) -> Order:
    """Refund, then release (both fence off a late charge/allocate); fail the order."""
    order_id = saga.order.id
    saga.compensations = [
        Step("release inventory", INVENTORY, "release", {"order_id": order_id}),
        Step("refund charge", PRICING, "refund", {"order_id": order_id}),
    ]
    if not saga.compensate():  # newest first: refund, then release
        logger.warning("order %s: undo incomplete, left pending", order_id)
        return saga.order
    saga.failure = (INTERRUPTED, message)
    return saga.settle()
