"""Overload: bursts of far more calls than capacity against one slow worker."""

from __future__ import annotations

import asyncio
import time

import msgpack
import pytest

import servicebus
from tests.chaos.garbage import request
from tests.chaos.support import (
    CHANNEL,
    PREFIX,
    key_length,
    member,
    rss_mb,
    start_worker,
    worker_stats,
    zadd_members,
)

pytestmark = pytest.mark.redis

CAPACITY = 40
BURST = 2000
BURSTS = 3
BODY = "x" * 16_384  # 16 KB per call: memory held per queued call shows in RSS
FLOOD = 5000
FLOOD_BODY = msgpack.packb("y" * 4096)


async def one_call(i: int) -> tuple[str, float]:
    start = time.monotonic()
    try:
        await servicebus.acall(CHANNEL, "echo_slow", BODY, timeout=30)
    except servicebus.ServiceBusError as exc:
        return type(exc).__name__, time.monotonic() - start
    return "ok", time.monotonic() - start


async def test_bursts_past_capacity_are_refused_fast_and_the_rest_answered(
    caller, redis_flushed, record_dir
):
    caller(capacity=CAPACITY)
    worker = start_worker(redis_flushed, record_dir, concurrency=8, capacity=CAPACITY)
    try:
        rss = [rss_mb(worker)]
        results: list[list[tuple[str, float]]] = []
        start = time.monotonic()
        for _ in range(BURSTS):
            burst = await asyncio.wait_for(asyncio.gather(*(one_call(i) for i in range(BURST))), 60)
            results.append(burst)
            rss.append(rss_mb(worker))
        took = time.monotonic() - start
        alive = worker.alive()
    finally:
        worker.stop()
    lines = []
    for n, burst in enumerate(results):
        refused = [t for kind, t in burst if kind == "Backpressure"]
        ok = [t for kind, t in burst if kind == "ok"]
        other = [kind for kind, _ in burst if kind not in ("ok", "Backpressure")]
        lines.append((len(ok), len(refused), max(refused, default=0.0), other))
        assert refused and ok, "a burst past capacity must both refuse and accept"
        assert other == [], f"burst {n}: accepted calls must all be answered: {other[:5]}"
        assert max(refused) < 3.0  # refused at once, not after waiting out the 30 s timeout
    print(
        f"\nCHAOS overload: {BURSTS} bursts of {BURST} calls (capacity {CAPACITY}, "
        f"concurrency 8) in {took:.1f}s; per burst (answered, refused, slowest refusal s, "
        f"other): {[(a, r, round(s, 3), o) for a, r, s, o in lines]}; "
        f"worker RSS MB {[round(x, 1) for x in rss]}"
    )
    assert alive
    # Bounded: the bursts do not pile up in the worker (the queue holds at most CAPACITY).
    assert rss[-1] - rss[1] < 25, rss
    assert max(rss) < 400, rss


async def test_flood_written_past_capacity_is_not_taken_into_worker_memory(
    caller, redis_flushed, record_dir
):
    # A peer that ignores capacity (ZADD straight into the key): the worker takes only what
    # its concurrency allows; what waits past its deadline expires in Redis, counted.
    caller(capacity=CAPACITY)
    worker = start_worker(redis_flushed, record_dir, concurrency=8, capacity=CAPACITY)
    try:
        before = rss_mb(worker)
        deadline = time.time() + 2.0
        flood = (
            member(request(f"flood-{i}", method="echo_slow", body=FLOOD_BODY, deadline=deadline))
            for i in range(FLOOD)
        )
        await asyncio.to_thread(zadd_members, redis_flushed, PREFIX + CHANNEL, flood, 500)
        peak = before
        end = time.monotonic() + 30
        while key_length(redis_flushed, PREFIX + CHANNEL) and time.monotonic() < end:
            peak = max(peak, rss_mb(worker))
            await asyncio.sleep(0.05)
        left = key_length(redis_flushed, PREFIX + CHANNEL)
        assert await servicebus.acall(CHANNEL, "echo", 1, timeout=10) == 1
        stats = await worker_stats()
    finally:
        worker.stop()
    expired = stats["metrics"].get("requests_expired", 0) + stats["layer"].get("expired", 0)
    handled = stats["metrics"].get("requests_handled", 0)
    print(
        f"\nCHAOS flood: {FLOOD} requests of {len(FLOOD_BODY) // 1024} KB written past "
        f"capacity {CAPACITY}; handled {handled}, expired {expired}, left {left}; "
        f"worker RSS MB {before:.1f} -> peak {peak:.1f}"
    )
    assert left == 0 and handled + expired >= FLOOD
    assert peak - before < 50
