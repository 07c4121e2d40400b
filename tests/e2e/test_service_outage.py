"""A service that stops answering: the order times out (504), then the channel fills
and callers get Backpressure (503), and every allocation is released."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.stack import Stack, start_stack

pytestmark = pytest.mark.e2e

CAPACITY = 3


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack with small channels, so a stopped worker's channel fills quickly."""
    running = start_stack(
        redis_url, tmp_path_factory.mktemp("outage"), call_timeout=1.5, capacity=CAPACITY
    )
    yield running
    running.stop()
    assert not running.crashes()


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
