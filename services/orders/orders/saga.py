"""The order saga: make the order row, allocate inventory, calculate the price, charge
the card, finalise inventory, finalise the order (the flow of Andrew Godwin's talk).

Each step is a call to the service that owns the data. When a step fails, the steps
already done are undone in reverse order (release the allocation, refund the charge)
and the order ends ``failed`` with the step's error code. A step whose outcome is
unknown (timeout, lost connection) is undone too: release and refund are idempotent
and fence off a late allocate or charge, so undoing something that never happened is
safe, while leaving a maybe-happened step in place is not.

The flow is written once (``flow()``, a generator of steps); ``arun()`` drives it with
``servicebus.acall`` on the HTTP server's event loop, ``run()`` with a sync call (the
monolith baseline's in-process calls, or ``servicebus.call`` in commands). Neither
touches the database: ``settle()`` writes the outcome, in one UPDATE, at the end.
A crash before that leaves the row ``pending`` for ``recovery.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
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
# Test-only: SIGKILL this process just before step N (1-4) of every saga, or with 5 after
# the last step, before the outcome is written (tests/e2e/test_saga_recovery.py).
CRASH_AT_STEP = "ORDERS_TEST_CRASH_AT_STEP"


@dataclass(frozen=True)
class Step:
    """One call of the flow, and the call that undoes it (if any)."""

    name: str
    channel: str
    method: str
    body: dict
    undo: tuple[str, str, str] | None = None  # (name, channel, method) called with {order_id}


def sync_bus_call() -> Callable[..., Any] | None:
    """``settings.ORDERS_BUS_CALL`` (a dotted path to a sync ``call``), or None for the bus.

    The monolith baseline of ``benchmarks.orders`` calls the handlers in-process with it.
    """
    path = getattr(settings, "ORDERS_BUS_CALL", None)
    return import_string(path) if path else None


class OrderSaga:
    """Runs the flow for one pending order, then ``settle()`` records confirmed or failed."""

    def __init__(self, order: Order, card_number: str) -> None:
        self.order = order
        self.card_number = card_number
        self.timeout = settings.ORDERS_CALL_TIMEOUT
        self.direct = sync_bus_call()
        self.compensations: list[Step] = []
        self.failure: tuple[str, str] | None = None
        self.crash_at = int(os.environ.get(CRASH_AT_STEP) or 0)

    # --- the flow -------------------------------------------------------------------

    def flow(self) -> Generator[Step, Any, None]:
        """The steps in order; each ``yield`` gets the step's reply (or raises its error)."""
        order = self.order
        yield Step(
            "allocate inventory",
            INVENTORY,
            "allocate",
            {"order_id": order.id, "items": order.items},
            undo=("release inventory", INVENTORY, "release"),
        )
        quote = yield Step("calculate price", PRICING, "quote", {"items": order.items})
        order.subtotal_cents = quote["subtotal_cents"]
        order.discount_cents = quote["discount_cents"]
        order.total_cents = quote["total_cents"]
        order.currency = quote["currency"]
        payment = yield Step(
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
        yield Step("finalise inventory", INVENTORY, "finalise", {"order_id": order.id})

    # --- drivers --------------------------------------------------------------------

    async def arun(self) -> None:
        """Run the steps (and compensations) with ``acall``; no database access."""
        steps = self.flow()
        reply: Any = None
        number = 0
        try:
            while True:
                step = steps.send(reply)
                number += 1
                self.crash_point(number)
                reply = await self.acall(step)
        except StopIteration:
            self.crash_point(number + 1)  # 5: every step done, the outcome not written
            return
        except ServiceBusError as exc:
            self.failure = (exc.code, str(exc))
        except Exception:
            # A bug, not a bus failure: still undo what was done, then say so in the log.
            logger.exception("order %s: the saga crashed", self.order.id)
            self.failure = ("internal", "internal error while placing the order")
        for undo in reversed(self.compensations):
            for attempt in range(1, COMPENSATION_ATTEMPTS + 1):
                try:
                    await self.acall(undo)
                    break
                except ServiceBusError as exc:
                    if attempt == COMPENSATION_ATTEMPTS:
                        self.gave_up(undo, exc)
                    else:
                        await asyncio.sleep(0.2 * attempt)

    def run(self) -> Order:
        """Run the steps with a sync call (in a thread), then ``settle()``."""
        steps = self.flow()
        reply: Any = None
        number = 0
        try:
            while True:
                step = steps.send(reply)
                number += 1
                self.crash_point(number)
                reply = self.call(step)
        except StopIteration:
            self.crash_point(number + 1)
        except ServiceBusError as exc:
            self.failure = (exc.code, str(exc))
        except Exception:
            logger.exception("order %s: the saga crashed", self.order.id)
            self.failure = ("internal", "internal error while placing the order")
        if self.failure:
            self.compensate()
        return self.settle()

    def compensate(self) -> bool:
        """Undo the steps done so far, newest first, retrying each a few times (sync).

        False when an undo still failed after its attempts.
        """
        undone = True
        for undo in reversed(self.compensations):
            for attempt in range(1, COMPENSATION_ATTEMPTS + 1):
                try:
                    self.call(undo)
                    break
                except ServiceBusError as exc:
                    if attempt == COMPENSATION_ATTEMPTS:
                        self.gave_up(undo, exc)
                        undone = False
                    else:
                        time.sleep(0.2 * attempt)
        return undone

    def gave_up(self, undo: Step, exc: ServiceBusError) -> None:
        # Left for recovery and an operator: the saga log on the order says what.
        logger.error("order %s: %s gave up: %s", self.order.id, undo.name, exc.code)

    # --- one call -------------------------------------------------------------------

    async def acall(self, step: Step) -> Any:
        started = time.perf_counter()
        try:
            reply = await servicebus.acall(
                step.channel, step.method, step.body, timeout=self.timeout
            )
        except ServiceBusError as exc:
            self.record(step, started, exc)
            raise
        self.record(step, started, None)
        return reply

    def call(self, step: Step) -> Any:
        started = time.perf_counter()
        call = self.direct or servicebus.call
        try:
            reply = call(step.channel, step.method, step.body, timeout=self.timeout)
        except ServiceBusError as exc:
            self.record(step, started, exc)
            raise
        self.record(step, started, None)
        return reply

    def record(self, step: Step, started: float, error: ServiceBusError | None) -> None:
        """Log the call (DEBUG), add it to the saga log, remember its undo."""
        ms = round((time.perf_counter() - started) * 1000, 1)
        outcome = error.code if error else "ok"
        call = f"{step.channel.partition('.')[0]}.{step.method}"
        logger.debug("order %s: %s %s %s in %.1f ms", self.order.id, step.name, call, outcome, ms)
        self.order.saga_log.append({"step": step.name, "call": call, "outcome": outcome, "ms": ms})
        # Done, or maybe done (the outcome is unknown): either way it must be undone.
        if step.undo and (error is None or isinstance(error, CallTimeout | BusUnavailable)):
            name, channel, method = step.undo
            self.compensations.append(Step(name, channel, method, {"order_id": self.order.id}))

    def crash_point(self, number: int) -> None:
        if number == self.crash_at:
            os.kill(os.getpid(), signal.SIGKILL)

    # --- the outcome ----------------------------------------------------------------

    def settle(self) -> Order:
        """Write the outcome in one UPDATE, only while the row is still pending.

        Conditional: should recovery (recovery.py) have settled the order meanwhile, its
        outcome stands, and the row is re-read instead. One INFO line per order.
        """
        order = self.order
        if self.failure:
            order.status = Order.Status.FAILED
            order.failure_code, message = self.failure
            order.failure_message = message[:500]
        else:
            order.status = Order.Status.CONFIRMED
        order.updated_at = timezone.now()
        written = Order.objects.filter(pk=order.pk, status=Order.Status.PENDING).update(
            **{field: getattr(order, field) for field in OUTCOME_FIELDS}
        )
        summary = ", ".join(f"{e['call']} {e['outcome']} {e['ms']} ms" for e in order.saga_log)
        if not written:
            order.refresh_from_db()
            logger.warning("order %s was settled meanwhile: %s", order.id, order.status)
        elif self.failure:
            logger.info("order %s failed: %s (%s)", order.id, order.failure_code, summary)
        else:
            logger.info(
                "order %s confirmed: %s cents %s (%s)",
                order.id,
                order.total_cents,
                order.currency,
                summary,
            )
        return order
