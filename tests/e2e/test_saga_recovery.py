"""Saga recovery: the orders process is SIGKILLed at each step of an order's saga, and
``recover_orders`` finishes (charged) or undoes (not charged) the order it left pending,
with stock, allocation and payment consistent, and running it again changes nothing."""

from __future__ import annotations

import http.client
import json
import urllib.error
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.stack import CARD_OK, Stack, start_stack

pytestmark = pytest.mark.e2e

SKU = "MUG-01"


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(redis_url, tmp_path_factory.mktemp("recovery"), call_timeout=3.0)
    yield running
    running.stop()
    assert not running.crashes()


def row(stack: Stack, service: str, sql: str, *params: object) -> tuple | None:
    rows = stack.query(service, sql, *params)
    return rows[0] if rows else None


def state(stack: Stack, order_id: str) -> dict:
    """The order, its allocation and payment, and the processor's charges and refunds."""
    order = row(
        stack, "orders", "SELECT status, failure_code FROM orders_order WHERE id=?", order_id
    )
    allocation = row(
        stack, "inventory", "SELECT status FROM inventory_allocation WHERE order_id=?", order_id
    )
    payment = row(stack, "pricing", "SELECT status FROM pricing_payment WHERE order_id=?", order_id)
    lines = stack.lines("pricing")
    return {
        "order": order,
        "allocation": allocation[0] if allocation else None,
        "payment": payment[0] if payment else None,
        "charges": sum("processor charge" in line and order_id in line for line in lines),
        "stock": stack.query("inventory", "SELECT stock FROM inventory_product WHERE sku=?", SKU)[
            0
        ][0],
    }


def crash_an_order(stack: Stack, step: int) -> str:
    """POST an order to a daphne that SIGKILLs itself before saga step ``step``."""
    cid = f"crash-{step}-{uuid.uuid4().hex[:8]}"
    web = stack.start_web(ORDERS_TEST_CRASH_AT_STEP=str(step))
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
        stack.order([{"sku": SKU, "qty": 1}], X_Request_ID=cid)
    assert web.wait(10) == -9  # killed, not exited
    (order_id,) = row(stack, "orders", "SELECT id FROM orders_order WHERE correlation_id=?", cid)
    assert row(stack, "orders", "SELECT status FROM orders_order WHERE id=?", order_id) == (
        "pending",
    )
    stack.start_web()  # back in service, without the crash
    return order_id


def recover(stack: Stack, *args: str) -> str:
    return stack.manage("orders", "recover_orders", *args)


@pytest.mark.parametrize(
    ("step", "outcome"),
    [
        (1, "failed"),  # before allocate: nothing done
        (2, "failed"),  # allocated, not priced
        (3, "failed"),  # allocated and priced, not charged
        (4, "confirmed"),  # charged, not finalised
        (5, "confirmed"),  # every step done, the outcome not written
    ],
)
def test_an_order_killed_mid_saga_is_finished_or_undone(
    stack: Stack, step: int, outcome: str
) -> None:
    stock = state(stack, "-")["stock"]
    order_id = crash_an_order(stack, step)
    # Too young: a saga could still be running it (ORDERS_RECOVER_AFTER, 120 s).
    assert "0 confirmed, 0 failed, 0 left" in recover(stack)
    assert state(stack, order_id)["order"] == ("pending", "")

    assert f"1 {outcome}" in recover(stack, "--older-than", "0")
    after = state(stack, order_id)
    if outcome == "confirmed":
        assert after["order"] == ("confirmed", "")
        assert (after["allocation"], after["payment"], after["charges"]) == (
            "finalised",
            "charged",
            1,
        )
        assert after["stock"] == stock - 1
        order = stack.request("GET", f"/orders/{order_id}").body["order"]
        assert order["total_cents"] == 1200 and order["payment_ref"]
    else:
        assert after["order"] == ("failed", "interrupted")
        # Refund voided the payment (a late charge would be refused), release fenced
        # the allocation (a late allocate too); the stock is whole again.
        assert (after["allocation"], after["payment"], after["charges"]) == (
            "released",
            "voided",
            0,
        )
        assert after["stock"] == stock
    # Idempotent: a second pass finds nothing and changes nothing.
    assert "0 confirmed, 0 failed, 0 left" in recover(stack, "--older-than", "0")
    assert state(stack, order_id) == after


def test_a_late_charge_after_recovery_is_refused(stack: Stack) -> None:
    """Recovery voids the payment of an order it undoes: a charge arriving later fails."""
    order_id = crash_an_order(stack, 3)
    assert "1 failed" in recover(stack, "--older-than", "0")
    late = json.dumps(
        {"order_id": order_id, "amount_cents": 1200, "currency": "EUR", "card_number": CARD_OK}
    )
    out = stack.manage(
        "orders",
        "shell",
        "-c",
        "import servicebus\n"
        "try:\n"
        f"    servicebus.call('pricing.request', 'charge', {late})\n"
        "except servicebus.ServiceBusError as exc:\n"
        "    print('refused', exc.code)\n",
    )
    assert "refused payment_voided" in out
    assert state(stack, order_id)["charges"] == 0
