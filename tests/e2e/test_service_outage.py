"""Services that answer late or not at all: the order times out (504) and is undone;
a stopped worker's channel fills and callers get Backpressure (503)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.stack import CARD_SLOW, Stack, start_stack
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.e2e

CAPACITY = 3


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    """A Redis of this module's own: the last test stops it."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack with small channels, so a stopped worker's channel fills quickly."""
    running = start_stack(
        redis.url, tmp_path_factory.mktemp("outage"), call_timeout=1.5, capacity=CAPACITY
    )
    yield running
    running.stop()
    assert not running.crashes()


def test_charge_answering_too_late_is_refunded(stack: Stack) -> None:
    before = stack.stock("MUG-01")
    resp = stack.order([{"sku": "MUG-01", "qty": 1}], card=CARD_SLOW)
    assert resp.status == 504, resp.body
    order = resp.body["order"]
    assert order["failure_code"] == "timeout"
    calls = [entry["call"] for entry in order["saga_log"]]
    # The charge's outcome is unknown: the saga refunds it and releases the stock.
    assert calls[calls.index("pricing.charge") + 1 :][:1] == ["pricing.refund"]
    assert "inventory.release" in calls
    # The charge went through after the caller gave up; the refund undid it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = stack.query(
            "pricing", "SELECT status FROM pricing_payment WHERE order_id=?", order["id"]
        )
        if rows and rows[0][0] in ("refunded", "voided"):
            break
        time.sleep(0.1)
    assert rows and rows[0][0] in ("refunded", "voided"), rows
    assert stack.stock("MUG-01") == before


def test_pricing_down_times_out_and_releases_then_backpressure(stack: Stack) -> None:
    assert stack.workers["pricing"].stop() == 0  # SIGTERM drains and exits cleanly
    before = stack.stock("MUG-01")

    # Each order's quote waits in pricing.request, unanswered, until the call times out.
    with ThreadPoolExecutor(CAPACITY) as pool:
        timed_out = list(
            pool.map(lambda _: stack.order([{"sku": "MUG-01", "qty": 1}]), range(CAPACITY))
        )
    for resp in timed_out:
        assert resp.status == 504, resp.body
        order = resp.body["order"]
        assert (order["status"], order["failure_code"]) == ("failed", "timeout")
        assert [e["call"] for e in order["saga_log"]][-1] == "inventory.release"

    # The channel now holds CAPACITY requests: the next send is refused at once.
    resp = stack.order([{"sku": "MUG-01", "qty": 1}])
    assert resp.status == 503, resp.body
    assert resp.headers["Retry-After"]
    assert resp.body["order"]["failure_code"] == "backpressure"

    assert stack.stock("MUG-01") == before
    held = stack.query(
        "inventory", "SELECT count(*) FROM inventory_allocation WHERE status != 'released'"
    )
    assert held == [(0,)]

    health = stack.request("GET", "/health")
    assert health.status == 503
    assert health.body["checks"]["pricing"] in {"error: timeout", "error: backpressure"}
    assert health.body["checks"]["inventory"] == "ok"


def test_redis_down_is_503_unavailable(stack: Stack, redis: RedisServer) -> None:
    redis.stop()
    resp = stack.order([{"sku": "MUG-01", "qty": 1}])
    assert resp.status == 503, resp.body
    assert resp.headers["Retry-After"]
    order = resp.body["order"]
    assert (order["status"], order["failure_code"]) == ("failed", "unavailable")
    # The allocate may have reached Redis before the connection broke: the saga tries to
    # release it (and, Redis being down, logs that it gave up).
    assert [entry["call"] for entry in order["saga_log"]][:2] == [
        "inventory.allocate",
        "inventory.release",
    ]
