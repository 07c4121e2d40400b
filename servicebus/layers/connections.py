"""The clients of one shard in one event loop: pipelined commands, and blocking pops."""

from __future__ import annotations

import asyncio

from .hosts import DEFAULT_SOCKET_TIMEOUT, HostSpec
from .pool import BlockingPool, CommandClient

# Idle pop connections kept per (loop, shard): about one per channel popped concurrently.
POP_CONNECTIONS_KEPT = 16


class ShardClients:
    """Commands go down one pipelined connection; each blocking pop borrows its own.

    Blocking pops never hold the command connection, and past ``max_blocking``
    concurrent pops a new one waits for a free connection instead of failing.
    """

    __slots__ = ("blocking", "commands", "pop_margin")

    def __init__(
        self, spec: HostSpec, loop: asyncio.AbstractEventLoop, *, max_blocking: int
    ) -> None:
        self.commands = CommandClient(spec, loop)
        self.blocking = BlockingPool(spec, limit=max_blocking, keep=POP_CONNECTIONS_KEPT)
        # How long a blocking pop's reply may come after its server-side timeout.
        self.pop_margin = max(1.0, spec.socket_timeout or DEFAULT_SOCKET_TIMEOUT)

    async def aclose(self) -> None:
        """Close both clients' connections."""
        await self.commands.aclose()
        await self.blocking.aclose()
