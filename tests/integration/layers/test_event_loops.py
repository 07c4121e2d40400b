"""One layer used from several event loops (threads, asyncio.run, async_to_sync)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync

from servicebus.layers import RedisChannelLayer

pytestmark = pytest.mark.redis


def test_two_loops_in_two_threads(redis_flushed: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_flushed])
    results: dict[str, object] = {}
    both_listening = threading.Barrier(2, timeout=10)

    async def side(name: str, other: str) -> None:
        reply = await layer.new_channel()
        results[f"{name}.reply"] = reply
        waiter = asyncio.ensure_future(layer.receive(f"inbox.{name}"))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(both_listening.wait)
        await layer.send(f"inbox.{other}", {"from": name})
        results[f"{name}.inbox"] = await asyncio.wait_for(waiter, 10)
        await layer.send(reply, {"self": name})
        results[f"{name}.local"] = await asyncio.wait_for(layer.receive(reply), 10)

    def run(name: str, other: str) -> None:
        try:
            asyncio.run(side(name, other))
        except BaseException as exc:  # reported by the main thread
            results[f"{name}.error"] = exc

    threads = [threading.Thread(target=run, args=p) for p in (("a", "b"), ("b", "a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    errors = {k: repr(v) for k, v in results.items() if k.endswith(".error")}
    assert not errors
    assert results["a.inbox"] == {"from": "b"}
    assert results["b.inbox"] == {"from": "a"}
    assert results["a.local"] == {"self": "a"}
    assert results["b.local"] == {"self": "b"}
    # asyncio.run closed both loops, and the layer let go of their connections.
    assert layer._loops == {}


def test_sync_code_through_async_to_sync(redis_flushed: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_flushed])
    for i in range(5):
        async_to_sync(layer.send)("sync.channel", {"i": i})
    got = [async_to_sync(layer.receive)("sync.channel")["i"] for _ in range(5)]
    assert got == list(range(5))
    assert len(layer._loops) <= 1
