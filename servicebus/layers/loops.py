"""Per-event-loop state: each loop gets its own connections, coalescers and drainers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .batching import SendCoalescer
from .cluster import SlotClient
from .connections import ShardClients

logger = logging.getLogger(__name__)


class LoopState:
    """Connections, coalescers and drainers of one event loop."""

    def __init__(self) -> None:
        # By shard index (hosts), or by node address (Redis Cluster).
        self.shards: dict[Any, ShardClients] = {}
        # By route: shard index, or cluster slot (a send script touches one slot only).
        self.coalescers: dict[int, SendCoalescer] = {}
        self.slots: dict[int, SlotClient] = {}
        self.drainers: dict[str, asyncio.Task[None]] = {}
        # Pops still in flight whose receive_many caller was cancelled, by channel.
        self.orphans: dict[str, list[asyncio.Future[Any]]] = {}

    async def aclose(self) -> None:
        """Stop drainers, let in-flight pops and batches finish, close the connections."""
        for task in self.drainers.values():
            task.cancel()
        if self.drainers:
            await asyncio.wait(list(self.drainers.values()), timeout=5.0)
        self.drainers.clear()
        # Orphaned pops are not cancelled (that could drop what Redis already popped):
        # they end within one block timeout and leave their messages in the leftovers.
        orphans = [pop for pops in self.orphans.values() for pop in pops]
        if orphans:
            await asyncio.wait(orphans, timeout=5.0)
        self.orphans.clear()
        for coalescer in self.coalescers.values():
            await coalescer.aclose()
        self.coalescers.clear()
        self.slots.clear()
        for clients in self.shards.values():
            await clients.aclose()
        self.shards.clear()


def close_with_loop(
    loop: asyncio.AbstractEventLoop, detach: Callable[[], LoopState | None]
) -> None:
    """Make ``loop.close()`` first close the layer's state for that loop.

    Like channels_redis: a loop closed without layer.close() (async_to_sync,
    asyncio.run) must not leave its connections and drainers behind.
    """
    original = loop.close

    def close() -> None:
        state = detach()
        if state is not None and not loop.is_running():
            try:
                loop.run_until_complete(state.aclose())
            except Exception:
                logger.debug("closing layer connections with their loop failed", exc_info=True)
        original()

    try:
        loop.close = close  # type: ignore[method-assign]
    except AttributeError:  # loops implemented in C may refuse; layer.close() still works
        pass
