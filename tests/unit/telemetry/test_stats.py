"""The stats hook: counts by code, quantiles from buckets, bounded labels, the builtins."""

from __future__ import annotations

import time
from typing import TypedDict

from servicebus import Service
from servicebus.request import Request
from servicebus.telemetry import builtins, labels
from servicebus.telemetry.identity import instance_id
from servicebus.telemetry.stats import BOUNDS, Ring, Stats, bucket_of, quantile_ms, stats
from tests.unit.telemetry.helpers import Info


def handled(s: Stats, *, method: str = "allocate", duration: float = 0.002, code: str = "ok",
            started: float | None = None, service: str = "inventory") -> None:  # fmt: skip
    info = Info(method=method, duration=duration, code=code, service=service)
    if started is not None:
        info.started = started
    s.server_start(info)
    s.server_end(info)


def test_quantiles_within_a_bucket_of_the_truth() -> None:
    s = Stats()
    for i in range(100):
        # 1..100 ms: p50 ~ 50 ms, p99 ~ 99 ms
        handled(s, duration=(i + 1) / 1000)
    body = s.snapshot("inventory")
    m = body["methods"]["allocate"]
    assert m["count"] == 100 and m["codes"] == {"ok": 100}
    assert 50 <= m["p50_ms"] <= 50 * 1.25
    assert 99 <= m["p99_ms"] <= 99 * 1.25
    assert body["in_flight"] == 0


def test_codes_rates_and_errors() -> None:
    s = Stats()
    for _ in range(30):
        handled(s)
    for _ in range(10):
        handled(s, code="out_of_stock")
    body = s.snapshot("inventory")
    assert body["methods"]["allocate"]["codes"] == {"ok": 30, "out_of_stock": 10}
    assert body["calls_per_s"] > 0 and body["errors_per_s"] > 0
    assert body["errors_per_s"] * 3 <= body["calls_per_s"] + 1e-9


def test_in_flight_counts_started_requests() -> None:
    s = Stats()
    info = Info()
    s.server_start(info)
    s.server_start(Info())
    assert s.snapshot("inventory", now=time.time())["in_flight"] == 2
    s.server_end(info)
    assert s.snapshot("inventory", now=time.time() + 2)["in_flight"] == 1


def test_window_forgets_old_calls_but_counts_stay() -> None:
    s = Stats()
    long_ago = time.time() - 3600
    handled(s, started=long_ago)
    body = s.snapshot("inventory")
    assert body["methods"]["allocate"]["count"] == 1
    assert body["methods"]["allocate"]["p50_ms"] is None  # nothing in the last minute
    assert body["calls_per_s"] == 0


def test_ring_reuses_slots() -> None:
    ring = Ring(10.0, 6)
    for t in range(0, 600, 5):
        ring.add(float(t), bucket_of(0.001), error=False)
    calls, errors, _ = ring.totals(599.0)
    assert calls == 12 and errors == 0  # the last 6 slots of 10 s, 2 calls each
    points = ring.points(599.0)
    assert len(points) == 6 and all(p[1] == 2 for p in points)


def test_quantile_of_sparse_histogram_and_overflow() -> None:
    assert quantile_ms({"0": 1}, 0.5) == round(BOUNDS[0] * 1000, 3)
    assert quantile_ms([0] * 10, 0.5) is None
    assert bucket_of(10_000.0) == len(BOUNDS)  # slower than the last bound: overflow bucket


def test_unknown_and_odd_method_names_are_bounded() -> None:
    labels.methods.clear()
    s = Stats()
    for i in range(50):
        handled(s, method=f"nope{i}", code="method_not_found")
    handled(s, method="x" * 10_000)
    handled(s, method="drop table; --")
    names = set(s.snapshot("inventory")["methods"])
    assert names == {labels.UNKNOWN}


def test_label_set_caps_distinct_values() -> None:
    capped = labels.LabelSet(3, "_other")
    assert [capped.admit(f"c{i}") for i in range(5)] == ["c0", "c1", "c2", "_other", "_other"]
    assert capped.admit("c1") == "c1"


def test_history_has_fifteen_minutes_of_points() -> None:
    s = Stats()
    handled(s)
    history = s.snapshot("inventory")["history"]
    assert len(history) == 60
    assert history[-1][1] == 1 and history[0][1] == 0


def test_snapshot_is_cached_for_a_flood() -> None:
    s = Stats()
    handled(s)
    now = time.time()
    first = s.snapshot("inventory", now=now)
    handled(s)
    assert s.snapshot("inventory", now=now + 0.2) is first
    assert s.snapshot("inventory", now=now + 0.7)["methods"]["allocate"]["count"] == 2


def test_builtins_ping_info_stats() -> None:
    svc = Service("inventory")

    @svc.method()
    def allocate(request: Request) -> dict[str, bool]:
        """Reserve stock for an order.

        More text that _info does not show.
        """
        return {"ok": True}

    class Reserve(TypedDict):
        sku: str

    @svc.method(body=Reserve)
    def reserve(request: Request):  # no return annotation: no response schema
        return None

    @svc.method("undocumented")
    async def other(request: Request) -> None:
        return None

    request = Request(
        method="_info", body=None, correlation_id="c", deadline=time.time() + 5,
        service="inventory",
    )  # fmt: skip
    assert builtins.ping(request) == {"service": "inventory", "instance": instance_id()}
    assert builtins.info(request)["methods"] == []  # not registered: nothing to describe
    builtins.register_service(svc)
    body = builtins.info(request)
    assert body["service"] == "inventory" and body["pid"] > 0 and body["version"]
    bools = {"type": "object", "additionalProperties": {"type": "boolean"}}
    assert body["methods"] == [
        {"name": "allocate", "doc": "Reserve stock for an order.", "request_schema": None,
         "response_schema": bools},
        {"name": "reserve", "doc": "", "request_schema": {"$ref": "#/$defs/Reserve", "$defs": {
            "Reserve": {"title": "Reserve", "type": "object",
                        "properties": {"sku": {"type": "string"}}, "required": ["sku"]}}},
         "response_schema": None},
        {"name": "undocumented", "doc": "", "request_schema": None, "response_schema": None},
    ]  # fmt: skip
    stats.reset()
    handled(stats)
    assert builtins.stats_body(request)["methods"]["allocate"]["count"] == 1


def test_hook_calls_only_queue_and_the_queue_folds_itself() -> None:
    from servicebus.telemetry.stats import FOLD_EVERY

    s = Stats()
    for _ in range(FOLD_EVERY - 1):
        handled(s)
    assert s.services == {}  # nothing counted yet: the hook only queued the calls
    handled(s)  # the queue is full: the hook folds it in itself
    assert sum(s.services["inventory"].codes["allocate"].values()) == FOLD_EVERY
    started = Info()
    s.server_start(started)
    assert s.snapshot("inventory", fresh=True)["in_flight"] == 1  # reading folds first
    s.client_end(Info(kind="client", service="pricing", method="quote", code="timeout"))
    assert s.export()["calls"] == {("pricing", "quote", "timeout"): 1}
