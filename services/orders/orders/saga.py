"""The order saga: make the order row, allocate inventory, calculate the price, charge
the card, finalise inventory, finalise the order (the flow of Andrew Godwin's talk).

Each step is a call to the service that owns the data. When a step fails, the steps
already done are undone in reverse order (release the allocation, refund the charge)
and the order ends ``failed`` with the step's error code. A step whose outcome is
unknown (timeout, lost connection) is undone too: release and refund are idempotent
and fence off a late allocate or charge, so undoing something that never happened is
safe, while leaving a maybe-happened step in place is not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

import servicebus
from orders.models import Order
from servicebus import BusUnavailable, CallTimeout, ServiceBusError

logger = logging.getLogger("orders.saga")

INVENTORY = "inventory.request"
PRICING = "pricing.request"
# What the saga writes when it ends (one UPDATE).
OUTCOME_FIELDS = (
    "status",
    "failure_code",
    "failure_message",
    "subtotal_cents",
    "discount_cents",
    "total_cents",
    "currency",
    "payment_ref",
    "saga_log",
    "updated_at",
)
# Compensations must get through: they are idempotent, so retrying them is safe.
COMPENSATION_ATTEMPTS = 3


def bus_call() -> Callable[..., Any]:
    """How steps are called: ``servicebus.call``, or ``settings.ORDERS_BUS_CALL`` (dotted path).

    The monolith baseline of ``benchmarks.orders`` calls the handlers in-process instead.
    """
    path = getattr(settings, "ORDERS_BUS_CALL", None)
    return import_string(path) if path else servicebus.call


class OrderSaga:
    """Runs the flow for one pending order; ``run()`` returns it confirmed or failed."""

    def __init__(self, order: Order, card_number: str) -> None:
        self.order = order
        self.card_number = card_number
        self.timeout = settings.ORDERS_CALL_TIMEOUT
        self.bus_call = bus_call()
        self.compensations: list[tuple[str, Callable[[], Any]]] = []

    def run(self) -> Order:
        """Place the order; failures end in ``failed`` with a code, never in an exception."""
        order = self.order
        try:
            self.place()
        except ServiceBusError as exc:
            self.fail(exc.code, str(exc))
        except Exception:
            # A bug, not a bus failure: still undo what was done, then say so in the log.
            logger.exception("order %s: the saga crashed", order.id)
            self.fail("internal", "internal error while placing the order")
        else:
            self.finish(Order.Status.CONFIRMED)
            logger.info(
                "order %s confirmed: %s cents %s", order.id, order.total_cents, order.currency
            )
        return order

    def place(self) -> None:
        """The steps in order; each raises on failure. The row is written once, at the end."""
        order = self.order
        self.step(
            "allocate inventory",
            INVENTORY,
            "allocate",
            {"order_id": order.id, "items": order.items},
            undo=("release inventory", INVENTORY, "release"),
        )
        quote = self.step("calculate price", PRICING, "quote", {"items": order.items})
        order.subtotal_cents = quote["subtotal_cents"]
        order.discount_cents = quote["discount_cents"]
        order.total_cents = quote["total_cents"]
        order.currency = quote["currency"]
        payment = self.step(
            "charge card",
            PRICING,
            "charge",
            {
                "order_id": order.id,
                "amount_cents": quote["total_cents"],
                "currency": quote["currency"],
                "card_number": self.card_number,
            },
            undo=("refund charge", PRICING, "refund"),
        )
        order.payment_ref = payment["processor_ref"]
        self.step("finalise inventory", INVENTORY, "finalise", {"order_id": order.id})

    def fail(self, code: str, message: str) -> None:
        """Undo the steps done, then record the order as failed with ``code``."""
        self.compensate()
        self.order.failure_code = code
        self.order.failure_message = message[:500]
        self.finish(Order.Status.FAILED)
        logger.info("order %s failed: %s", self.order.id, code)

    def finish(self, status: str) -> None:
        """Write the outcome in one UPDATE, only while the row is still pending.

        Conditional: should recovery (recovery.py) have settled the order meanwhile, its
        outcome stands, and this saga's row is re-read instead.
        """
        order = self.order
        order.status = status
        order.updated_at = timezone.now()
        written = Order.objects.filter(pk=order.pk, status=Order.Status.PENDING).update(
            **{field: getattr(order, field) for field in OUTCOME_FIELDS}
        )
        if not written:
            order.refresh_from_db()

    def step(
        self,
        name: str,
        channel: str,
        method: str,
        body: dict,
        undo: tuple[str, str, str] | None = None,
    ) -> Any:
        """Make one call; on success (or an unknown outcome) remember how to undo it."""
        try:
            reply = self.call(name, channel, method, body)
        except (CallTimeout, BusUnavailable):
            if undo:
                self.remember(undo)
            raise
        if undo:
            self.remember(undo)
        return reply

    def remember(self, undo: tuple[str, str, str]) -> None:
        name, channel, method = undo
        body = {"order_id": self.order.id}
        self.compensations.append((name, lambda: self.call(name, channel, method, body)))

    def compensate(self) -> None:
        """Undo the steps done so far, newest first, retrying each a few times."""
        for name, undo in reversed(self.compensations):
            for attempt in range(1, COMPENSATION_ATTEMPTS + 1):
                try:
                    undo()
                    break
                except ServiceBusError as exc:
                    if attempt == COMPENSATION_ATTEMPTS:
                        # Left for an operator: the saga log on the order says what.
                        logger.error("order %s: %s gave up: %s", self.order.id, name, exc.code)
                    else:
                        time.sleep(0.2 * attempt)

    def call(self, name: str, channel: str, method: str, body: dict) -> Any:
        """One bus call, logged (one line) and recorded in the order's saga log."""
        service = channel.partition(".")[0]
        started = time.perf_counter()
        outcome = "ok"
        try:
            return self.bus_call(channel, method, body, timeout=self.timeout)
        except ServiceBusError as exc:
            outcome = exc.code
            raise
        finally:
            ms = round((time.perf_counter() - started) * 1000, 1)
            logger.info(
                "order %s: %s %s.%s %s in %.1f ms",
                self.order.id,
                name,
                service,
                method,
                outcome,
                ms,
            )
            self.order.saga_log.append(
                {"step": name, "call": f"{service}.{method}", "outcome": outcome, "ms": ms}
            )
