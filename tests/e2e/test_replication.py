"""Replication of inventory's products to pricing and orders, through real processes:
inventory's ``servicebus_relay``, a ``servicebus_consume`` per service, and the repair
commands (``servicebus_dump --keys-only`` at inventory, ``servicebus_diff`` at pricing)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.stack import Stack, start_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The services with their relay and consumers."""
    running = start_stack(
        redis_url, tmp_path_factory.mktemp("replication"), call_timeout=10.0, replication=True
    )
    yield running
    running.stop()
    assert not running.crashes()
    # Nothing failed or was dead-lettered on the way.
    errors = [
        f"{proc.name}: {line}"
        for proc in running.replication.values()
        for line in proc.lines
        if " ERROR " in line or "WARNING" in line
    ]
    assert not errors, errors


def wait_until(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll ``check`` (at most ``timeout`` seconds) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


def replica(stack: Stack, service: str, sku: str) -> tuple | None:
    """(sku, name, [list price,] revision) of the product in the service's replica."""
    price = "list_price_cents, " if service == "pricing" else ""
    rows = stack.query(
        service, f"SELECT sku, name, {price}revision FROM {service}_product WHERE sku=?", sku
    )
    return rows[0] if rows else None


def source_revision(stack: Stack, sku: str) -> int:
    return stack.query("inventory", "SELECT revision FROM inventory_product WHERE sku=?", sku)[0][0]


def test_new_and_changed_products_reach_both_replicas(stack: Stack) -> None:
    stack.manage(
        "inventory", "set_product", "NEW-01", "--name", "New mug", "--price", "700", "--stock", "5"
    )
    wait_until(
        lambda: replica(stack, "pricing", "NEW-01") == ("NEW-01", "New mug", 700, 1), "pricing"
    )
    wait_until(lambda: replica(stack, "orders", "NEW-01") == ("NEW-01", "New mug", 1), "orders")
    resp = stack.order([{"sku": "NEW-01", "qty": 2}])
    assert resp.status == 201, resp.body
    assert resp.body["order"]["total_cents"] == 1400
    # Orders shows the name from its replica.
    order = stack.request("GET", f"/orders/{resp.body['order']['id']}").body["order"]
    assert order["items"] == [{"sku": "NEW-01", "qty": 2, "name": "New mug"}]

    # A change of list price through inventory's bus method: the next quote uses it.
    call = (
        "import json, servicebus; print(json.dumps(servicebus.call('inventory.request', "
        "'update_product', {'sku': 'NEW-01', 'list_price_cents': 950, 'name': 'Newer mug'})))"
    )
    # Django 5.2 shell prints a line about its automatic imports first: the reply is last.
    reply = json.loads(stack.manage("orders", "shell", "-c", call).splitlines()[-1])
    assert reply["product"]["list_price_cents"] == 950 and reply["created"] is False
    wait_until(
        lambda: replica(stack, "pricing", "NEW-01") == ("NEW-01", "Newer mug", 950, 2), "pricing"
    )
    wait_until(lambda: replica(stack, "orders", "NEW-01") == ("NEW-01", "Newer mug", 2), "orders")
    resp = stack.order([{"sku": "NEW-01", "qty": 3}])
    assert resp.status == 201, resp.body
    assert resp.body["order"]["total_cents"] == 3 * 950
    assert resp.body["order"]["items"][0]["name"] == "Newer mug"


def test_the_relay_publishes_what_was_not_published_on_commit(stack: Stack) -> None:
    # Without the on-commit publish the event waits in inventory's outbox for the relay.
    stack.manage(
        "inventory", "set_product", "MUG-01", "--price", "1250", OUTBOX_PUBLISH_ON_COMMIT="0"
    )
    rev = source_revision(stack, "MUG-01")
    wait_until(lambda: replica(stack, "pricing", "MUG-01")[2:] == (1250, rev), "pricing")
    wait_until(lambda: replica(stack, "orders", "MUG-01")[2] == rev, "orders")
    unpublished = "SELECT count(*) FROM servicebus_outbox_outboxevent WHERE published_at IS NULL"
    wait_until(lambda: stack.query("inventory", unpublished) == [(0,)], "relay marked it")
    resp = stack.order([{"sku": "MUG-01", "qty": 1}])
    assert resp.status == 201 and resp.body["order"]["total_cents"] == 1250, resp.body
    stack.manage("inventory", "set_product", "MUG-01", "--price", "1200")


def test_stock_changes_publish_nothing(stack: Stack) -> None:
    before = source_revision(stack, "TEE-01")
    assert stack.order([{"sku": "TEE-01", "qty": 1}]).status == 201
    # Allocation moved stock with a conditional UPDATE: no revision, no event.
    assert source_revision(stack, "TEE-01") == before
    assert replica(stack, "pricing", "TEE-01")[3] == before


def test_deleted_product_leaves_the_replicas_and_cannot_be_ordered(stack: Stack) -> None:
    stack.manage("inventory", "set_product", "DEL-01", "--name", "Gone soon", "--price", "100")
    wait_until(lambda: replica(stack, "pricing", "DEL-01"), "replicated to pricing")
    wait_until(lambda: replica(stack, "orders", "DEL-01"), "replicated to orders")
    key = str(stack.query("inventory", "SELECT id FROM inventory_product WHERE sku='DEL-01'")[0][0])
    stack.manage("inventory", "delete_product", "DEL-01")
    for service in ("pricing", "orders"):
        wait_until(lambda s=service: replica(stack, s, "DEL-01") is None, f"gone from {service}")
        tombstone = stack.query(
            service,
            "SELECT revision FROM servicebus_outbox_tombstone WHERE model=? AND key=?",
            f"{service}.product",
            key,
        )
        assert tombstone == [(2,)]
    resp = stack.order([{"sku": "DEL-01", "qty": 1}])
    assert resp.status == 400, resp.body
    assert resp.body["order"]["failure_code"] == "unknown_sku"


def test_diff_repairs_a_replica_changed_by_hand(stack: Stack) -> None:
    source = {sku: source_revision(stack, sku) for sku in ("MUG-01", "STK-01")}
    with stack.connect("pricing") as db:  # what no one should do: edit a replica by hand
        db.execute(
            "UPDATE pricing_product SET list_price_cents=1, revision=revision+5 WHERE sku='MUG-01'"
        )
        db.execute("DELETE FROM pricing_product WHERE sku='STK-01'")
    # Pricing no longer knows STK-01: the order fails with a clear (retryable) code.
    resp = stack.order([{"sku": "STK-01", "qty": 1}])
    assert resp.status == 503, resp.body
    assert resp.body["order"]["failure_code"] == "unknown_product"

    keys = stack.manage("inventory", "servicebus_dump", "inventory.Product", "--keys-only")
    report = json.loads(
        stack.manage(
            "pricing", "servicebus_diff", "pricing.Product", "--group", "pricing", stdin=keys
        )
    )
    assert report["in_sync"] is False and report["resync_requested"] == 2, report
    # The re-sync request goes to inventory's consumer, which republishes both rows.
    wait_until(
        lambda: replica(stack, "pricing", "MUG-01")[2:] == (1200, source["MUG-01"]),
        "MUG-01 repaired",
    )
    wait_until(
        lambda: (replica(stack, "pricing", "STK-01") or ())[2:] == (300, source["STK-01"]),
        "STK-01 back",
    )
    keys = stack.manage("inventory", "servicebus_dump", "inventory.Product", "--keys-only")
    report = json.loads(
        stack.manage(
            "pricing", "servicebus_diff", "pricing.Product", "--group", "pricing", stdin=keys
        )
    )
    assert report["in_sync"] is True, report
    assert stack.order([{"sku": "STK-01", "qty": 1}]).status == 201
