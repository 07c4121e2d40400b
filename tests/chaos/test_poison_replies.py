"""Poison replies: garbage in a caller's reply key while it calls; it must never go deaf."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.layers import get_channel_layer

import servicebus
from servicebus.metrics import metrics
from tests.chaos.garbage import reply_garbage
from tests.chaos.support import (
    CHANNEL,
    drop_count,
    reply_key,
    rng,
    start_worker,
    zadd_members,
)
from tests.support.load import Load, call_keys, call_record

pytestmark = pytest.mark.redis

GARBAGE = 3000
VALID = 400


async def test_garbage_in_the_reply_key_never_deafens_the_caller(caller, redis_flushed, record_dir):
    caller(capacity=100_000)  # the garbage must not be what fills the reply channel
    worker = start_worker(redis_flushed, record_dir)
    try:
        channel = await servicebus.acall(CHANNEL, "reply_to", timeout=10)
        key = reply_key(channel)
        items = reply_garbage(rng(), GARBAGE, channel)
        load = Load()
        start = time.monotonic()

        async def garbage() -> None:
            for i in range(0, len(items), 100):
                chunk = [item.data for item in items[i : i + 100]]
                await asyncio.to_thread(zadd_members, redis_flushed, key, chunk)
                await asyncio.sleep(0.01)

        valid = call_keys(load, CHANNEL, (f"valid-{i}" for i in range(VALID)), loops=16, timeout=10)
        try:
            await asyncio.wait_for(asyncio.gather(garbage(), valid), 60)
            hung = False
        except TimeoutError:  # reported below with what was answered
            hung = True
        took = time.monotonic() - start
        # Never deaf afterwards: every later call of this process is answered.
        after = Load()
        await asyncio.wait_for(
            asyncio.gather(
                *(call_record(after, CHANNEL, f"after-{i}", timeout=5) for i in range(50))
            ),
            30,
        )
        layer_stats = dict(getattr(get_channel_layer(), "stats", {}))
    finally:
        worker.stop()
    counted = {k: v for k, v in metrics.snapshot().items() if k.startswith("replies_")}
    dropped = drop_count({"layer": layer_stats, "metrics": metrics.snapshot()})
    undecodable = sum(1 for i in items if i.undecodable)
    print(
        f"\nCHAOS poison replies: {len(items)} hostile replies + {VALID} calls in {took:.1f}s "
        f"(hung: {hung}); "
        f"answered {len(load.ok_keys())}/{VALID}, errors {dict(load.errors())}; "
        f"after: {len(after.ok_keys())}/50 answered; caller counted {dropped} malformed "
        f"(>= {undecodable} undecodable sent), {counted}, layer {layer_stats}"
    )
    assert not hung and load.errors() == {} and load.misrouted == 0
    assert after.errors() == {} and len(after.ok_keys()) == 50
    assert dropped >= undecodable
