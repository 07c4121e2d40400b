"""LocalBuffers: bounded per-channel buffers for '!' channels."""

from __future__ import annotations

import asyncio
import threading
import time

from servicebus.layers.core import STAT_NAMES
from servicebus.layers.drain import LocalBuffers


def _buffers(capacity: int = 3, expiry: float = 60) -> LocalBuffers:
    return LocalBuffers(lambda channel: capacity, expiry, dict.fromkeys(STAT_NAMES, 0))


async def test_full_buffer_drops_oldest_and_counts() -> None:
    buffers = _buffers(capacity=3)
    for i in range(5):
        buffers.put("c!1", time.time(), {"i": i})
    assert buffers._stats["dropped_local"] == 2
    assert [(await buffers.get("c!1"))["i"] for _ in range(3)] == [2, 3, 4]
    assert len(buffers) == 0


async def test_expired_messages_are_skipped_and_swept() -> None:
    buffers = _buffers(expiry=10)
    buffers.put("c!1", time.time() - 20, {"old": 1})
    buffers.put("c!1", time.time(), {"new": 1})
    assert await buffers.get("c!1") == {"new": 1}
    buffers.put("c!2", time.time() - 20, {"old": 2})
    buffers.sweep()
    assert len(buffers) == 0
    assert buffers._stats["expired"] == 2


async def test_waiter_is_woken_and_cancel_is_clean() -> None:
    buffers = _buffers()
    waiter = asyncio.ensure_future(buffers.get("c!1"))
    cancelled = asyncio.ensure_future(buffers.get("c!2"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert "c!2" not in buffers._waiters
    buffers.put("c!1", time.time(), {"x": 1})
    assert await asyncio.wait_for(waiter, 1) == {"x": 1}


async def test_put_from_another_thread_wakes_this_loop() -> None:
    buffers = _buffers()
    waiter = asyncio.ensure_future(buffers.get("c!1"))
    await asyncio.sleep(0)
    thread = threading.Thread(target=buffers.put, args=("c!1", time.time(), {"t": 1}))
    thread.start()
    assert await asyncio.wait_for(waiter, 2) == {"t": 1}
    thread.join()
