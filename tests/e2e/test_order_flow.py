"""The order saga end to end: real workers over Redis, driven through the HTTP API."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.stack import CARD_DECLINED, CARD_OK, CARD_UNAVAILABLE, SERVICES_DIR, Stack

pytestmark = pytest.mark.e2e


def allocation_status(stack: Stack, order_id: str) -> str | None:
    rows = stack.query(
        "inventory", "SELECT status FROM inventory_allocation WHERE order_id=?", order_id
    )
    return rows[0][0] if rows else None


def payment_status(stack: Stack, order_id: str) -> str | None:
    rows = stack.query("pricing", "SELECT status FROM pricing_payment WHERE order_id=?", order_id)
    return rows[0][0] if rows else None


def processor_charges(stack: Stack, order_id: str) -> int:
    """Charges the fake card processor made for the order (it logs each one)."""
    return sum("processor charge" in line and order_id in line for line in stack.lines("pricing"))


def test_health_checks_database_and_every_service(stack: Stack) -> None:
    resp = stack.request("GET", "/health")
    assert resp.status == 200, resp.body
    assert resp.body["checks"] == {
        "database": "ok",
        "inventory": "ok",
        "pricing": "ok",
        "orders": "ok",
    }


def test_products_come_from_inventory(stack: Stack) -> None:
    resp = stack.request("GET", "/products")
    assert resp.status == 200
    assert {p["sku"] for p in resp.body["products"]} >= {"MUG-01", "TEE-01", "LTD-01"}


def test_successful_order(stack: Stack) -> None:
    before = stack.stock("MUG-01")
    resp = stack.order([{"sku": "MUG-01", "qty": 2}], X_Request_ID="e2e-success")
    assert resp.status == 201, resp.body
    order = resp.body["order"]
    assert order["status"] == "confirmed"
    assert order["total_cents"] == 2 * 1200
    assert order["correlation_id"] == "e2e-success"
    assert resp.headers["X-Request-ID"] == "e2e-success"
    assert [entry["call"] for entry in order["saga_log"]] == [
        "inventory.allocate",
        "pricing.quote",
        "pricing.charge",
        "inventory.finalise",
    ]
    assert stack.stock("MUG-01") == before - 2
    assert allocation_status(stack, order["id"]) == "finalised"
    assert payment_status(stack, order["id"]) == "charged"
    fetched = stack.request("GET", f"/orders/{order['id']}")
    assert fetched.status == 200
    assert fetched.body["order"]["status"] == "confirmed"


def test_bulk_discount_only_with_its_feature_flag(stack: Stack) -> None:
    items = [{"sku": "STK-01", "qty": 10}]
    plain = stack.order(items)
    flagged = stack.order(items, X_Feature_Flags="other, bulk_discount")
    assert plain.status == flagged.status == 201
    assert plain.body["order"]["total_cents"] == 3000
    assert flagged.body["order"]["discount_cents"] == 300
    assert flagged.body["order"]["total_cents"] == 2700


def test_out_of_stock_is_409_and_allocates_nothing(stack: Stack) -> None:
    before = stack.stock("TEE-01")
    resp = stack.order([{"sku": "MUG-01", "qty": 1}, {"sku": "TEE-01", "qty": before + 1}])
    assert resp.status == 409, resp.body
    order = resp.body["order"]
    assert (order["status"], order["failure_code"]) == ("failed", "out_of_stock")
    assert resp.body["error"]["code"] == "out_of_stock"
    assert stack.stock("TEE-01") == before
    assert allocation_status(stack, order["id"]) is None  # rolled back, MUG-01 line too
    assert payment_status(stack, order["id"]) is None


def test_declined_card_is_402_and_releases_the_allocation(stack: Stack) -> None:
    before = stack.stock("MUG-01")
    resp = stack.order([{"sku": "MUG-01", "qty": 3}], card=CARD_DECLINED)
    assert resp.status == 402, resp.body
    order = resp.body["order"]
    assert order["failure_code"] == "card_declined"
    assert order["saga_log"][-1]["call"] == "inventory.release"
    assert allocation_status(stack, order["id"]) == "released"
    assert stack.stock("MUG-01") == before
    assert payment_status(stack, order["id"]) is None


def test_transient_payment_failure_fails_the_order_and_compensates(stack: Stack) -> None:
    before = stack.stock("MUG-01")
    resp = stack.order([{"sku": "MUG-01", "qty": 1}], card=CARD_UNAVAILABLE)
    assert resp.status == 503, resp.body
    assert resp.headers.get("Retry-After")
    order = resp.body["order"]
    assert (order["status"], order["failure_code"]) == ("failed", "payment_unavailable")
    assert allocation_status(stack, order["id"]) == "released"
    assert stack.stock("MUG-01") == before


def test_idempotency_key_returns_the_same_order_and_charges_once(stack: Stack) -> None:
    key = f"key-{uuid.uuid4().hex}"
    first = stack.order([{"sku": "MUG-01", "qty": 1}], Idempotency_Key=key)
    second = stack.order([{"sku": "MUG-01", "qty": 1}], Idempotency_Key=key)
    assert (first.status, second.status) == (201, 200)
    order_id = first.body["order"]["id"]
    assert second.body["order"]["id"] == order_id
    assert processor_charges(stack, order_id) == 1
    other = stack.order([{"sku": "MUG-01", "qty": 5}], Idempotency_Key=key)
    assert other.status == 422
    assert other.body["error"]["code"] == "idempotency_key_reused"


def test_concurrent_duplicates_make_one_order(stack: Stack) -> None:
    key = f"key-{uuid.uuid4().hex}"
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(
                lambda _: stack.order([{"sku": "TEE-01", "qty": 1}], Idempotency_Key=key),
                range(8),
            )
        )
    ids = {resp.body["order"]["id"] for resp in responses}
    assert len(ids) == 1
    statuses = [resp.status for resp in responses]
    # One request placed it; the others replayed it (200) or found it in progress (202).
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 202}, statuses
    assert stack.query("pricing", "SELECT count(*) FROM pricing_payment WHERE order_id=?", *ids)[
        0
    ] == (1,)


def test_correlation_id_is_in_the_logs_of_every_service(stack: Stack) -> None:
    cid = f"e2e-cid-{uuid.uuid4().hex[:12]}"
    resp = stack.order([{"sku": "MUG-01", "qty": 1}], X_Request_ID=cid)
    assert resp.status == 201
    assert resp.headers["X-Request-ID"] == cid
    order_id = resp.body["order"]["id"]
    # Each worker's access line of the calls this order made (handler details are DEBUG).
    for service, method in (("inventory", "allocate"), ("pricing", "charge")):
        stack.workers[service].wait_for(f"[{cid}] servicebus.access: {service}.{method} ok", 5)
    charged = stack.workers["pricing"].wait_for(f" for {order_id}: ", 5)
    assert "processor charge" in charged and cid in charged
    assert stack.web is not None
    assert cid in stack.web.wait_for(f"order {order_id} confirmed", 5)
    # And the orders worker tags what it serves for that request too.
    stack.request("GET", "/health", headers={"X-Request-ID": cid})
    assert cid in stack.workers["orders"].wait_for(f"[{cid}]", 5)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"items": [], "card_number": CARD_OK},
        {"items": [{"sku": "MUG-01", "qty": 0}], "card_number": CARD_OK},
        {"items": [{"sku": "MUG-01", "qty": 1}], "card_number": "12ab"},
    ],
)
def test_invalid_requests_are_400(stack: Stack, body: dict) -> None:
    resp = stack.request("POST", "/orders", body)
    assert resp.status == 400
    assert resp.body["error"]["code"] == "invalid_request"


def test_unknown_sku_fails_the_order_with_400(stack: Stack) -> None:
    resp = stack.order([{"sku": "NOPE-99", "qty": 1}])
    assert resp.status == 400
    assert resp.body["order"]["failure_code"] == "unknown_sku"


def test_bad_request_id_is_replaced(stack: Stack) -> None:
    resp = stack.request(
        "GET", "/health", headers={"X-Request-ID": "has spaces and is way too long" * 3}
    )
    assert resp.headers["X-Request-ID"] and " " not in resp.headers["X-Request-ID"]


def test_unknown_order_is_404(stack: Stack) -> None:
    assert stack.request("GET", "/orders/ord_missing").status == 404


def test_fifty_concurrent_orders_for_the_last_ten_units(stack: Stack) -> None:
    assert stack.stock("LTD-01") == 10
    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda _: stack.order([{"sku": "LTD-01", "qty": 1}]), range(50)))
    statuses = [resp.status for resp in responses]
    assert statuses.count(201) == 10, statuses
    assert statuses.count(409) == 40, statuses
    assert stack.stock("LTD-01") == 0
    held = stack.query(
        "inventory",
        "SELECT sum(l.qty) FROM inventory_allocationline l "
        "JOIN inventory_product p ON p.id = l.product_id "
        "JOIN inventory_allocation a ON a.id = l.allocation_id "
        "WHERE p.sku = 'LTD-01' AND a.status != 'released'",
    )
    assert held == [(10,)]
    assert stack.query("inventory", "SELECT min(stock) FROM inventory_product") >= [(0,)]


def test_wrong_method_is_405(stack: Stack) -> None:
    assert stack.request("GET", "/orders").status == 405
    assert stack.request("POST", "/health", {}).status == 405


def test_the_container_healthcheck_script(stack: Stack) -> None:
    """services/healthcheck.py, as docker-compose runs it in a service's directory."""

    def check(service: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(SERVICES_DIR / "healthcheck.py"), *args],
            cwd=SERVICES_DIR / service,
            env={**os.environ, **stack.service_envs[service], **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert check("inventory", "worker", "inventory").returncode == 0
    # No Redis, no answer: unhealthy.
    gone = check("inventory", "worker", "inventory", REDIS_URL="redis://127.0.0.1:1/0")
    assert gone.returncode == 1 and "unhealthy" in gone.stderr
    # Here PID 1 is not the relay: a container whose command died is unhealthy.
    relay = check("inventory", "process", "inventory", "servicebus_relay")
    assert relay.returncode == 1 and "PID 1 is not servicebus_relay" in relay.stderr


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        return resp.read().decode()


def _series(text: str, name: str, **labels: str) -> float:
    """The value of the sample of ``name`` carrying these labels (any label order)."""
    import re

    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1).split(",") for k, v in labels.items()):
            return float(match.group(2))
    raise AssertionError(f"no {name}{labels} in:\n{text[:2000]}")


def test_services_expose_metrics_and_status_lists_them(stack: Stack) -> None:
    import json
    import time

    resp = stack.order([{"sku": "MUG-01", "qty": 1}], X_Request_ID="e2e-metrics")
    assert resp.status == 201, resp.body
    # The HTTP edge (daphne) serves its caller-side series on /metrics.
    edge = _get(f"http://127.0.0.1:{stack.port}/metrics")
    assert (
        _series(edge, "servicebus_calls_total", service="inventory", method="allocate", code="ok")
        >= 1
    )
    # Each runworker serves its server-side series on --metrics-port.
    worker = _get(f"http://127.0.0.1:{stack.metrics_ports['inventory']}/metrics")
    handled = _series(
        worker, "servicebus_requests_total", service="inventory", method="allocate", code="ok"
    )
    assert handled >= 1
    assert _series(worker, "servicebus_worker_concurrency", service="inventory") == 64
    # servicebus_status lists the three services, each with its live instance.
    deadline = time.monotonic() + 20
    while True:
        status = json.loads(stack.manage("orders", "servicebus_status", "--json"))
        names = {s["name"]: s for s in status["services"]}
        if all(names.get(n, {}).get("instances") for n in ("inventory", "pricing", "orders")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert names["inventory"]["channel"] == "inventory.request"
