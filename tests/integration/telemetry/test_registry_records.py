"""Instance registry, call records and read.py on a real Redis (hooks fed by hand)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis

from servicebus.telemetry import read
from servicebus.telemetry import store as keys
from servicebus.telemetry.records import CallRecorder
from servicebus.telemetry.registry import Heartbeat
from servicebus.telemetry.stats import stats
from servicebus.telemetry.store import RedisStore
from tests.support.redis_server import RedisServer, free_port
from tests.unit.telemetry.helpers import Info

pytestmark = pytest.mark.redis


@pytest.fixture
async def store(redis_flushed: str) -> AsyncIterator[RedisStore]:
    s = RedisStore(redis_flushed, "asgi")
    stats.reset()
    yield s
    await s.close()
    stats.reset()


def handle(info: Info, recorder: CallRecorder | None = None) -> None:
    stats.server_start(info)
    stats.server_end(info)
    if recorder is not None:
        recorder.server_end(info)


async def test_heartbeat_lists_instance_and_dead_ones_disappear(store: RedisStore) -> None:
    for _ in range(20):
        handle(Info(duration=0.003))
    handle(Info(code="out_of_stock"))
    beat = Heartbeat(store, {"inventory": "inventory.request"}, interval=0.2)
    assert await beat.beat()
    overview = await read.overview(store)
    [svc] = overview["services"]
    assert svc["name"] == "inventory" and svc["channel"] == "inventory.request"
    [inst] = svc["instances"]
    assert inst["pid"] > 0 and inst["stale"] is False
    assert svc["calls_per_s"] > 0 and svc["errors_per_s"] > 0
    assert 3 <= svc["p50_ms"] <= 3 * 1.25
    assert svc["backlog"] == 0 and len(svc["history"]) == 60
    detail = await read.service(store, "inventory", ask=False)
    [method] = detail["methods"]
    assert method["name"] == "allocate" and method["codes"] == {"ok": 20, "out_of_stock": 1}
    # No more beats: the entry expires after three intervals.
    await asyncio.sleep(0.8)
    assert (await read.overview(store))["services"] == []


async def test_clean_stop_removes_the_instance_at_once(store: RedisStore) -> None:
    beat = Heartbeat(store, {"inventory": "inventory.request"}, interval=30)
    await beat.beat()
    assert len((await read.overview(store))["services"]) == 1
    await beat.remove()
    assert (await read.overview(store))["services"] == []


async def test_heartbeat_survives_redis_down_and_catches_up() -> None:
    port = free_port()
    down = RedisStore(f"redis://127.0.0.1:{port}/0", "asgi")
    beat = Heartbeat(down, {"inventory": "inventory.request"}, interval=0.1)
    started = time.monotonic()
    assert await beat.beat() is False  # logged, not raised
    assert await beat.beat() is False
    assert time.monotonic() - started < 6
    with RedisServer(port=port):
        assert await beat.beat() is True
        assert [s["name"] for s in (await read.overview(down))["services"]] == ["inventory"]
        await down.close()


async def test_records_trace_and_failures(store: RedisStore) -> None:
    recorder = CallRecorder()
    recorder.configure(active=True)
    t0 = time.time()
    handle(Info(service="orders", method="place", request_id="r1", correlation_id="T",
                started=t0, duration=0.05), recorder)  # fmt: skip
    handle(Info(service="inventory", method="allocate", request_id="r2", parent_id="r1",
                correlation_id="T", started=t0 + 0.01, duration=0.01), recorder)  # fmt: skip
    handle(Info(service="payments", method="charge", request_id="r3", parent_id="r1",
                correlation_id="T", started=t0 + 0.02, duration=0.02, code="card_declined"),
           recorder)  # fmt: skip
    handle(Info(correlation_id="other"), recorder)
    assert await recorder.flush(store) == 4
    trace = await read.trace(store, "T")
    assert [(c["service"], c["depth"], c["code"]) for c in trace["calls"]] == [
        ("orders", 0, "ok"),
        ("inventory", 1, "ok"),
        ("payments", 1, "card_declined"),
    ]
    assert trace["calls"][1]["offset_ms"] == pytest.approx(10, abs=0.01)
    assert trace["duration_ms"] == pytest.approx(50, abs=0.01)
    [failed] = await read.failures(store)
    assert failed["method"] == "charge" and failed["correlation_id"] == "T"
    # Never a body or a header value in a record.
    assert set(failed) == {
        "correlation_id", "parent_id", "request_id", "service", "method", "caller", "start",
        "duration_ms", "code", "kind", "instance",
    }  # fmt: skip


async def test_call_stream_stays_bounded(store: RedisStore, redis_flushed: str) -> None:
    recorder = CallRecorder()
    recorder.configure(active=True, maxlen=20)
    for round_ in range(40):
        for i in range(100):
            recorder.server_end(Info(correlation_id=f"c{round_}-{i}"))
        await recorder.flush(store)
    client = redis.Redis.from_url(redis_flushed)
    length = client.xlen(keys.key(store, keys.CALLS))
    client.close()
    # MAXLEN ~ trims whole radix-tree nodes (100 entries each by default).
    assert 20 <= length <= 20 + 100
    assert recorder.written == 4000


async def test_sampling_keeps_failures_and_whole_traces(store: RedisStore) -> None:
    recorder = CallRecorder()
    recorder.configure(active=True, sample=0.0)
    recorder.server_end(Info(correlation_id="a"))
    recorder.server_end(Info(correlation_id="a", code="internal"))
    recorder.configure(active=True, sample=0.5)
    kept = set()
    for i in range(200):
        for _hop in range(3):
            recorder.server_end(Info(correlation_id=f"t{i}"))
    await recorder.flush(store)
    rows = await read.records(store, 1000)
    assert [r["code"] for r in rows if r["correlation_id"] == "a"] == ["internal"]
    per_trace: dict[str, int] = {}
    for r in rows:
        if r["correlation_id"].startswith("t"):
            per_trace[r["correlation_id"]] = per_trace.get(r["correlation_id"], 0) + 1
            kept.add(r["correlation_id"])
    assert set(per_trace.values()) == {3}  # a trace is kept whole or not at all
    assert 60 <= len(kept) <= 140


async def test_recording_failure_never_raises() -> None:
    recorder = CallRecorder()
    recorder.configure(active=True)
    recorder.server_end(Info())
    down = RedisStore(f"redis://127.0.0.1:{free_port()}/0", "asgi")
    assert await recorder.flush(down) == 0
    assert recorder.lost == 1
