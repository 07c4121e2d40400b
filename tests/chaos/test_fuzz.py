"""Fuzz: thousands of hostile messages in a worker's request key, valid calls mixed in."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

import servicebus
from tests.chaos.garbage import invalid_requests, request_garbage
from tests.chaos.support import (
    CHANNEL,
    PREFIX,
    drop_count,
    key_length,
    rng,
    start_worker,
    worker_stats,
    zadd_members,
)
from tests.support.load import Load, call_keys, recorded

pytestmark = pytest.mark.redis

GARBAGE = 10_000
VALID = 1000


async def test_request_key_fuzz_every_valid_call_answered_garbage_counted(
    caller, redis_flushed, record_dir
):
    caller(capacity=100_000)  # the garbage goes around the capacity check; the calls must not
    worker = start_worker(redis_flushed, record_dir, capacity=100_000)
    try:
        items = request_garbage(rng(), GARBAGE)
        chunks = [items[i : i + 250] for i in range(0, len(items), 250)]
        load = Load()
        start = time.monotonic()

        async def garbage() -> None:
            for chunk in chunks:  # in waves, between the valid calls
                await asyncio.to_thread(
                    zadd_members, redis_flushed, PREFIX + CHANNEL, [i.data for i in chunk]
                )
                await asyncio.sleep(0.02)

        valid = call_keys(load, CHANNEL, (f"valid-{i}" for i in range(VALID)), loops=16, timeout=20)
        try:
            await asyncio.wait_for(asyncio.gather(garbage(), valid), 90)
            hung = False
        except TimeoutError:  # reported below with what was answered
            hung = True
        took = time.monotonic() - start
        # The worker eats the rest of the garbage (bounded wait), then answers as before.
        deadline = time.monotonic() + 30
        while key_length(redis_flushed, PREFIX + CHANNEL) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        left = key_length(redis_flushed, PREFIX + CHANNEL)
        after = await servicebus.acall(CHANNEL, "echo", "still here", timeout=10)
        stats = await worker_stats()
        alive = worker.alive()
    finally:
        code = worker.stop()
    counts = recorded(record_dir)
    kinds = Counter(i.kind.split("=")[0] for i in items)
    must_not_run = [i.must_not_run for i in items if i.must_not_run]
    ran_anyway = sorted({i.kind for i in items if i.must_not_run and counts[i.must_not_run]})
    undecodable = sum(1 for i in items if i.undecodable)
    print(
        f"\nCHAOS fuzz/request: {len(items)} hostile + {VALID} valid in {took:.1f}s "
        f"(hung: {hung}); "
        f"valid answered {len(load.ok_keys())}/{VALID}, errors {dict(load.errors())}; "
        f"garbage left {left}; worker counted {drop_count(stats)} malformed "
        f"(>= {undecodable} undecodable sent); {len(ran_anyway)} invalid kinds ran: {ran_anyway}"
        f"\n  kinds {dict(kinds)}\n  worker counters {stats}"
    )
    assert not hung and load.errors() == {} and load.misrouted == 0
    assert all(counts[k] == 1 for k in load.ok_keys())  # each valid call ran exactly once
    assert alive and code == 0  # alive until SIGTERM, then a clean exit
    assert after == "still here" and left == 0
    assert drop_count(stats) >= undecodable
    assert len(must_not_run) > 1000  # the invalid envelopes: each kind is pinned below


async def test_invalid_envelopes_never_run(caller, redis_flushed, record_dir):
    worker = start_worker(redis_flushed, record_dir)
    try:
        items = invalid_requests()
        zadd_members(redis_flushed, PREFIX + CHANNEL, [i.data for i in items])
        deadline = time.monotonic() + 30
        while key_length(redis_flushed, PREFIX + CHANNEL) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # A valid call sent after them is answered after they were all taken.
        assert await servicebus.acall(CHANNEL, "record", "sentinel", timeout=10)
        alive = worker.alive()
    finally:
        worker.stop()
    counts = recorded(record_dir)
    ran = [i.kind for i in items if counts[i.must_not_run or ""]]
    print(f"\nCHAOS invalid envelopes: {len(items)} kinds written, these ran: {ran}")
    assert alive and counts["sentinel"] == 1
    assert ran == []
