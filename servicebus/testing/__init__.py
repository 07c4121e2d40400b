"""Test helpers shipped for users: serve services in-process, on any channel layer.

With channels' InMemoryChannelLayer, callers and services in one process work unchanged:

    async with servicebus.testing.serve(inventory):
        assert await servicebus.acall("inventory.request", "allocate", {...}) == ...

    with servicebus.testing.serve_in_background(inventory):   # for sync call()
        servicebus.call("inventory.request", "allocate", {...})
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from servicebus.bridge import bridge
from servicebus.service import Service
from servicebus.transport import get_transport, transport_for
from servicebus.worker import Worker

__all__ = ["serve", "serve_in_background"]


def _worker(services: tuple[Service, ...], layer: Any, concurrency: int | None) -> Worker:
    if not services:
        raise ValueError("serve() needs at least one Service")
    targets = {svc.channel: svc for svc in services}
    transport = get_transport() if layer is None else transport_for(layer)
    return Worker(transport, targets, concurrency=concurrency, drain_timeout=5.0)


@contextlib.asynccontextmanager
async def serve(
    *services: Service, layer: Any = None, concurrency: int | None = None
) -> AsyncIterator[Worker]:
    """Run a worker for ``services`` on the current event loop for the block."""
    worker = _worker(services, layer, concurrency)
    task = asyncio.create_task(worker.run())
    await worker.started.wait()
    try:
        yield worker
    finally:
        worker.stop()
        await task


@contextlib.contextmanager
def serve_in_background(
    *services: Service, layer: Any = None, concurrency: int | None = None
) -> Iterator[Worker]:
    """Run a worker for ``services`` on the sync bridge's loop, where ``call()`` runs."""
    worker = _worker(services, layer, concurrency)
    done = bridge.submit(worker.run())
    bridge.run(worker.started.wait(), timeout=10)
    try:
        yield worker
    finally:
        worker.stop()
        done.result(timeout=30)
