"""LocalBuffers: bounded per-channel buffers for '!' channels."""

from __future__ import annotations

import asyncio
import threading
import time

from servicebus.layers.drain import LocalBuffers
from servicebus.layers.stats import LayerStats


def _buffers(capacity: int = 3, expiry: float = 60) -> LocalBuffers:
    return LocalBuffers(lambda channel: capacity, expiry, LayerStats())


async def test_full_buffer_drops_oldest_and_counts() -> None:
    buffers = _buffers(capacity=3)
    for i in range(5):
        buffers.put("c!1", time.time(), {"i": i})
    assert buffers._stats["local_buffer_full"] == 2
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


async def test_listener_gets_buffered_then_delivered_batches() -> None:
    buffers = _buffers(expiry=10)
    buffers.put("c!1", time.time(), {"i": 0})
    got: list[list[dict[str, int]]] = []
    assert buffers.listen("c!1", asyncio.get_running_loop(), got.append) == [{"i": 0}]
    now = time.time()
    buffers.deliver("c!1", [(now, {"i": 1}), (now - 20, {"old": 1}), (now, {"i": 2})])
    assert got == [[{"i": 1}, {"i": 2}]]  # called at once on its own loop, expired dropped
    assert buffers._stats["expired"] == 1
    buffers.unlisten("c!1", got.append)
    buffers.deliver("c!1", [(now, {"i": 3})])  # nobody listens: buffered for receive()
    assert await buffers.get("c!1") == {"i": 3}
    assert got == [[{"i": 1}, {"i": 2}]]


async def test_listener_of_another_loop_is_called_on_its_loop() -> None:
    buffers = _buffers()
    loop = asyncio.get_running_loop()
    called: asyncio.Future[tuple[list[dict[str, int]], threading.Thread]] = loop.create_future()

    def listener(messages: list[dict[str, int]]) -> None:
        called.set_result((messages, threading.current_thread()))

    buffers.listen("c!1", loop, listener)

    def other_thread() -> None:
        async def drain() -> None:
            buffers.deliver("c!1", [(time.time(), {"i": 1})])

        asyncio.run(drain())

    thread = threading.Thread(target=other_thread)
    thread.start()
    messages, caller = await asyncio.wait_for(called, 5)
    thread.join()
    assert messages == [{"i": 1}]
    assert caller is threading.current_thread()
