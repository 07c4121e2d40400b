"""Where a key lives: a shard of the ``hosts`` ring, or a slot of a Redis Cluster.

A *route* is an int: the shard index (channels_redis's CRC32 ring over channel names)
or the cluster slot of the key. ``commands(state, route)`` sends non-blocking commands
there; ``clients(state, route)`` gives the connections for a blocking pop. One layer
uses one of the two routings, chosen by its ``cluster`` setting.
"""

from __future__ import annotations

import abc
import asyncio
import binascii
import functools
from typing import Any

from .cluster import RESENDABLE, Address, ClusterRouter, SlotClient, key_slot
from .connections import ShardClients
from .errors import RedisRedirect, RedisUnavailable
from .hosts import HostSpec
from .loops import LoopState
from .pool import CommandClient, Commands, gather_all
from .resp import pack
from .scripts import DELETE_PREFIX
from .sentinel import check_host
from .stats import LayerStats

# Keys one SCAN step of a cluster flush asks for.
_SCAN_COUNT = 1000


def ring_index(value: str | bytes, size: int) -> int:
    """channels_redis's consistent hash: the shard of a name on a ring of ``size``."""
    if size == 1:
        return 0
    if isinstance(value, str):
        value = value.encode("utf8")
    return int((binascii.crc32(value) & 0xFFF) / (4096 / float(size)))


class Routing(abc.ABC):
    """Routes names and keys to the connections of the current event loop."""

    cluster = False

    def __init__(self, *, max_blocking: int) -> None:
        self.max_blocking = max_blocking

    @abc.abstractmethod
    def route(self, name: str, key: str | bytes) -> int:
        """The route of channel or group ``name`` whose Redis key is ``key``."""

    @abc.abstractmethod
    def commands(self, state: LoopState, route: int) -> Commands:
        """Non-blocking commands for ``route`` (never awaits)."""

    @abc.abstractmethod
    async def clients(self, state: LoopState, route: int) -> ShardClients:
        """The connections of the Redis that serves ``route`` now (for blocking pops)."""

    def failed(self, error: BaseException) -> None:  # noqa: B027 (a no-op by default)
        """A pop on some route failed with ``error``: learn where its key went."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Connect to every Redis once (AUTH, TLS, version); raise what is wrong."""

    async def command(self, state: LoopState, key: str | bytes, args: tuple[Any, ...]) -> Any:
        """One raw command on the Redis owning ``key``."""
        return await self.commands(state, self.key_route(key)).submit(pack(args))

    @abc.abstractmethod
    def key_route(self, key: str | bytes) -> int:
        """The route of a raw key (``command``/``pipeline``)."""

    @abc.abstractmethod
    async def pipeline(
        self, state: LoopState, key: str | bytes, commands: list[list[Any]]
    ) -> list[Any]:
        """Run raw commands in one round trip per Redis involved; replies in order."""

    @abc.abstractmethod
    async def delete_prefix(self, state: LoopState, prefix: str) -> None:
        """Delete every key starting with ``prefix`` everywhere."""

    def node(self, state: LoopState, where: Any, spec: HostSpec) -> ShardClients:
        """This loop's connections to one Redis (made on first use)."""
        clients = state.shards.get(where)
        if clients is None:
            clients = state.shards[where] = ShardClients(
                spec, asyncio.get_running_loop(), max_blocking=self.max_blocking
            )
        return clients


class ShardRouting(Routing):
    """Plain hosts (each may be found through Sentinel): channels_redis's CRC32 ring."""

    def __init__(self, specs: list[HostSpec], *, max_blocking: int) -> None:
        super().__init__(max_blocking=max_blocking)
        self.specs = specs
        self.size = len(specs)

    def route(self, name: str, key: str | bytes) -> int:
        """Every channel kind hashes its non-local name, so send and receive agree."""
        return ring_index(name, self.size)

    def commands(self, state: LoopState, route: int) -> Commands:
        """The shard's one pipelined command connection."""
        return self.node(state, route, self.specs[route]).commands

    async def clients(self, state: LoopState, route: int) -> ShardClients:
        """The shard's connections."""
        return self.node(state, route, self.specs[route])

    def key_route(self, key: str | bytes) -> int:
        """The shard of a raw key: the ring, as for names."""
        return ring_index(key, self.size)

    async def check(self) -> None:
        """Each host in turn."""
        for spec in self.specs:
            await check_host(spec)

    async def pipeline(
        self, state: LoopState, key: str | bytes, commands: list[list[Any]]
    ) -> list[Any]:
        """All on the shard owning ``key``."""
        return await self.commands(state, self.key_route(key)).pipeline(commands)

    async def delete_prefix(self, state: LoopState, prefix: str) -> None:
        """One script per shard."""
        for index in range(self.size):
            await DELETE_PREFIX(self.commands(state, index), [], [prefix + "*"])


class ClusterRouting(Routing):
    """Redis Cluster: keys go to the master of their slot (hash tags honoured)."""

    cluster = True

    def __init__(self, seeds: list[HostSpec], stats: LayerStats, *, max_blocking: int) -> None:
        super().__init__(max_blocking=max_blocking)
        self.router = ClusterRouter(seeds, stats)

    def route(self, name: str, key: str | bytes) -> int:
        """The slot of the key itself (Redis hashes keys, not channel names)."""
        return key_slot(key)

    def commands(self, state: LoopState, route: int) -> Commands:
        """A SlotClient: follows MOVED/ASK, retries TRYAGAIN/CLUSTERDOWN."""
        client = state.slots.get(route)
        if client is None:
            client = state.slots[route] = SlotClient(
                self.router,
                functools.partial(self._node_commands, state),
                asyncio.get_running_loop(),
                route,
            )
        return client

    def _node_commands(self, state: LoopState, address: Address) -> CommandClient:
        return self.node(state, address, self.router.spec(address)).commands

    async def clients(self, state: LoopState, route: int) -> ShardClients:
        """The connections of the slot's master (the map is loaded first if needed)."""
        address = self.router.owners[route]
        if address is None:
            await self.router.refresh()
            address = self.router.owners[route]
            if address is None:
                raise RedisUnavailable(f"no master serves cluster slot {route} now")
        return self.node(state, address, self.router.spec(address))

    def failed(self, error: BaseException) -> None:
        """MOVED: the slot's new master at once; any failure: refresh the map soon."""
        if isinstance(error, RedisRedirect):
            self.router.learn(error, ("", 0))
        if isinstance(error, (*RESENDABLE, RedisUnavailable)):
            self.router.refresh_soon()

    async def check(self) -> None:
        """Load the slot map from a seed, then check every master."""
        await self.router.refresh()
        if None in self.router.owners:
            missing = self.router.owners.count(None)
            raise RedisUnavailable(f"the cluster serves only {16384 - missing} of 16384 slots")
        for address in self.router.masters:
            await check_host(self.router.spec(address), cluster=True)

    def key_route(self, key: str | bytes) -> int:
        """The slot of a raw key."""
        return key_slot(key)

    async def pipeline(
        self, state: LoopState, key: str | bytes, commands: list[list[Any]]
    ) -> list[Any]:
        """Each command goes to the master of its own key (its first argument), or of
        ``key`` when it has none: one round trip per master, in parallel."""
        futures = [
            self.commands(state, key_slot(args[1] if len(args) > 1 else key)).submit(pack(args))
            for args in commands
        ]
        return await gather_all(futures)

    async def delete_prefix(self, state: LoopState, prefix: str) -> None:
        """SCAN every master for the prefix and UNLINK what it finds (slot by slot)."""
        if not self.router.masters:
            await self.router.refresh()
        for address in self.router.masters:
            client = self._node_commands(state, address)
            cursor: Any = b"0"
            while True:
                cursor, keys = await client.execute(
                    "SCAN", cursor, "MATCH", prefix + "*", "COUNT", _SCAN_COUNT
                )
                if keys:
                    await gather_all([client.submit(pack(("UNLINK", k))) for k in keys])
                if bytes(cursor) == b"0":
                    break
