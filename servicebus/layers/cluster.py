"""Redis Cluster: key slots, the slot map, and commands that follow their slot.

A key's slot is CRC16(key) mod 16384, hashing only the ``{tag}`` part when the key has
one, as Redis computes it. The slot map (slot -> master address) comes from
``CLUSTER SHARDS`` (``CLUSTER SLOTS`` where SHARDS is unknown), asked of any known node.
``SlotClient`` sends a slot's commands to its master: MOVED updates the map and
resends, ASK resends once to the target after ASKING, TRYAGAIN/CLUSTERDOWN/LOADING and a
demoted master are retried after a backoff, bounded in count and time. Each of those
replies means the command did not run, so a resend never runs it twice. A lost
connection is not retried (the command may have run): it fails with RedisUnavailable
and the map is refreshed for the next command.
"""

from __future__ import annotations

import asyncio
import binascii
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..backoff import Backoff
from .errors import (
    RedisAsk,
    RedisBusy,
    RedisCommandError,
    RedisConfigError,
    RedisMoved,
    RedisRedirect,
    RedisRoleChanged,
    RedisUnavailable,
)
from .hosts import HostSpec
from .pool import CommandClient, forward, gather_all
from .resp import Piece, open_connection, pack
from .stats import LayerStats

logger = logging.getLogger(__name__)

SLOTS = 16384
Address = tuple[str, int]

#: Errors after which the same command may be sent again: Redis did not run it.
RESENDABLE = (RedisRedirect, RedisBusy, RedisRoleChanged)

# A command follows at most this many redirections / retries, for at most this long.
MAX_ATTEMPTS = 16
RETRY_SECONDS = 3.0
# Refreshes of the slot map from one event loop are at least this far apart.
MIN_REFRESH_INTERVAL = 0.1

_ASKING = pack(("ASKING",))


def key_slot(key: str | bytes) -> int:
    """The cluster slot of ``key`` (CRC16-XMODEM mod 16384; ``{tag}`` honoured)."""
    if isinstance(key, str):
        key = key.encode("utf8")
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:  # an empty tag "{}" hashes the whole key, as Redis does
            key = key[start + 1 : end]
    return binascii.crc_hqx(key, 0) % SLOTS


def _text(value: Any) -> str:
    return bytes(value).decode() if isinstance(value, bytes | bytearray) else str(value)


def parse_shards(reply: Sequence[Any], asked: Address, tls: bool) -> dict[Address, list[int]]:
    """``CLUSTER SHARDS`` -> {master address: [start, end, start, end, ...]}.

    Per shard, the master whose health is ``online`` wins (after a failover the failed
    one is still listed as a master, with health ``fail``); a shard without a usable
    master is left out, so its slots have no owner until the next refresh.
    """
    owners: dict[Address, list[int]] = {}
    for shard in reply:
        fields = dict(zip(shard[::2], shard[1::2], strict=False))
        slots = [int(s) for s in fields.get(b"slots", [])]
        best: tuple[int, Address] | None = None
        for raw in fields.get(b"nodes", []):
            node = {_text(k): v for k, v in zip(raw[::2], raw[1::2], strict=False)}
            if _text(node.get("role", "")) != "master":
                continue
            health = _text(node.get("health", "online"))
            if health == "fail":
                continue
            rank = 0 if health == "online" else 1
            if best is None or rank < best[0]:
                best = (rank, _node_address(node, asked, tls))
        if best is not None and slots:
            owners.setdefault(best[1], []).extend(slots)
    return owners


def _node_address(node: dict[str, Any], asked: Address, tls: bool) -> Address:
    host = _text(node.get("endpoint", ""))
    if host in ("", "?"):
        host = _text(node.get("ip", ""))
    if host in ("", "?"):
        host = asked[0]  # the node we asked, which does not know its own address
    port = node.get("tls-port") if tls and "tls-port" in node else node.get("port")
    return host, int(port if port is not None else asked[1])


def parse_slots(reply: Sequence[Any], asked: Address) -> dict[Address, list[int]]:
    """``CLUSTER SLOTS`` (older servers, proxies) -> {master address: [start, end, ...]}."""
    owners: dict[Address, list[int]] = {}
    for entry in reply:
        start, end, master = int(entry[0]), int(entry[1]), entry[2]
        host = _text(master[0]) or asked[0]
        if host == "?":
            host = asked[0]
        owners.setdefault((host, int(master[1])), []).extend((start, end))
    return owners


class ClusterRouter:
    """The slot map of one layer (shared by its event loops) and how to refresh it."""

    def __init__(self, seeds: Sequence[HostSpec], stats: LayerStats) -> None:
        if not seeds:
            raise ValueError("a cluster needs at least one seed node in 'hosts'")
        for spec in seeds:
            if spec.master_name is not None:
                raise ValueError("'cluster': True cannot be combined with Sentinel hosts")
            if spec.db:
                raise ValueError("Redis Cluster has database 0 only: remove the db from 'hosts'")
        self.seeds = list(seeds)
        self.stats = stats
        #: slot -> master address (None: not known yet, or no master serves it now).
        self.owners: list[Address | None] = [None] * SLOTS
        self.masters: tuple[Address, ...] = ()
        self._specs: dict[Address, HostSpec] = {}
        self._refreshing: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        self._last_refresh = -MIN_REFRESH_INTERVAL
        self._turn = 0

    def spec(self, address: Address) -> HostSpec:
        """The connection settings of a node: the first seed's, at ``address``."""
        spec = self._specs.get(address)
        if spec is None:
            spec = self._specs[address] = dataclasses.replace(
                self.seeds[0], host=address[0], port=address[1], path=None
            )
        return spec

    def learn(self, error: RedisRedirect, asked: Address) -> Address:
        """The address a redirection names; MOVED also updates the map at once."""
        host, port = error.address
        target = (host or asked[0], port)
        self.stats["redirects"] += 1
        if isinstance(error, RedisMoved):
            self.owners[error.slot] = target
        return target

    def refresh_soon(self) -> None:
        """Start a refresh on the running loop unless one runs (errors are only logged)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop not in self._refreshing:
            self._start(loop)

    async def refresh(self) -> None:
        """Reload the slot map (one refresh per loop at a time, at most every 0.1 s)."""
        loop = asyncio.get_running_loop()
        task = self._refreshing.get(loop) or self._start(loop)
        await asyncio.shield(task)

    def _start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
        task = self._refreshing[loop] = loop.create_task(self._refresh())

        def done(finished: asyncio.Task[None]) -> None:
            if self._refreshing.get(loop) is finished:
                del self._refreshing[loop]
            if not finished.cancelled() and (exc := finished.exception()) is not None:
                logger.debug("cluster slot map refresh failed: %s", exc)

        task.add_done_callback(done)
        return task

    async def _refresh(self) -> None:
        wait = self._last_refresh + MIN_REFRESH_INTERVAL - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        # Known masters first (rotated, so one dead node is not always asked first), then
        # the seeds: any node knows the whole map.
        masters = list(self.masters)
        if masters:
            self._turn = (self._turn + 1) % len(masters)
            masters = masters[self._turn :] + masters[: self._turn]
        candidates: list[tuple[Address, HostSpec]] = [(a, self.spec(a)) for a in masters]
        candidates += [((s.host, s.port), s) for s in self.seeds]
        problems: list[str] = []
        seen: set[Address] = set()
        for address, spec in candidates:
            if address in seen:
                continue
            seen.add(address)
            try:
                owners = await self._ask(spec, address)
            except RedisConfigError:
                raise
            except (RedisUnavailable, RedisCommandError) as exc:
                problems.append(str(exc))
                continue
            self._apply(owners)
            return
        self._last_refresh = time.monotonic()
        raise RedisUnavailable("no cluster node answered CLUSTER SHARDS: " + "; ".join(problems))

    async def _ask(self, spec: HostSpec, address: Address) -> dict[Address, list[int]]:
        conn = await open_connection(spec)
        timeout = spec.socket_timeout or spec.connect_timeout
        try:
            try:
                reply = await conn.call("CLUSTER", "SHARDS", timeout=timeout)
                return parse_shards(reply, address, spec.ssl is not None)
            except RedisCommandError as exc:
                if "cluster support disabled" in str(exc):
                    raise RedisConfigError(
                        f"{conn.description} is not a Redis Cluster node: remove "
                        "\"cluster\": True or list cluster nodes in 'hosts'"
                    ) from None
                if "unknown" not in str(exc).lower():
                    raise
            return parse_slots(await conn.call("CLUSTER", "SLOTS", timeout=timeout), address)
        finally:
            conn.close()

    def _apply(self, owners: dict[Address, list[int]]) -> None:
        table: list[Address | None] = [None] * SLOTS
        for address, ranges in owners.items():
            for start, end in zip(ranges[::2], ranges[1::2], strict=False):
                table[start : end + 1] = [address] * (end - start + 1)
        # One assignment each: other threads' loops read a whole old or a whole new map.
        self.owners = table
        self.masters = tuple(owners)
        self._last_refresh = time.monotonic()
        self.stats["slot_map_refreshes"] += 1


class SlotClient:
    """Commands of one slot in one event loop, sent to the master that owns the slot."""

    __slots__ = ("_loop", "_nodes", "_router", "slot")

    def __init__(
        self,
        router: ClusterRouter,
        nodes: Callable[[Address], CommandClient],
        loop: asyncio.AbstractEventLoop,
        slot: int,
    ) -> None:
        self._router = router
        self._nodes = nodes
        self._loop = loop
        self.slot = slot

    def submit(self, data: Piece | list[Piece], replies: int = 1) -> asyncio.Future[Any]:
        """Send a packed command to the slot's master; the future of its (last) reply."""
        address = self._router.owners[self.slot]
        if address is None:
            return self._loop.create_task(self._retry(data, replies, None, None))
        outer: asyncio.Future[Any] = self._loop.create_future()
        inner = self._nodes(address).submit(data, replies)
        inner.add_done_callback(functools.partial(self._first, outer, data, replies, address))
        return outer

    async def execute(self, *args: Any) -> Any:
        """Run one command; its reply (an error reply raises)."""
        return await self.submit(pack(args))

    async def pipeline(self, commands: list[list[Any]]) -> list[Any]:
        """Run commands on this slot's master; their replies in order (first error raises)."""
        return await gather_all([self.submit(pack(args)) for args in commands])

    def _first(
        self,
        outer: asyncio.Future[Any],
        data: Piece | list[Piece],
        replies: int,
        address: Address,
        inner: asyncio.Future[Any],
    ) -> None:
        if outer.done():
            return
        if inner.cancelled():
            outer.cancel()
            return
        exc = inner.exception()
        if exc is None:
            outer.set_result(inner.result())
        elif isinstance(exc, RESENDABLE):
            task = self._loop.create_task(self._retry(data, replies, exc, address))
            task.add_done_callback(functools.partial(forward, target=outer))
        else:
            if isinstance(exc, RedisUnavailable):
                self._router.refresh_soon()  # the master may have failed over
            outer.set_exception(exc)

    async def _retry(
        self,
        data: Piece | list[Piece],
        replies: int,
        error: BaseException | None,
        asked: Address | None,
    ) -> Any:
        router = self._router
        backoff = Backoff(0.02, 0.5)
        deadline = self._loop.time() + RETRY_SECONDS
        for _ in range(MAX_ATTEMPTS):
            asking = False
            if isinstance(error, RedisRedirect):
                target: Address | None = router.learn(error, asked or ("", 0))
                asking = isinstance(error, RedisAsk)
                if not asking:
                    router.refresh_soon()
            else:
                if error is not None:
                    delay = backoff.next()
                    if self._loop.time() + delay > deadline:
                        break
                    await asyncio.sleep(delay)
                await router.refresh()
                target = router.owners[self.slot]
                if target is None:
                    error = RedisBusy(f"CLUSTERDOWN no master serves slot {self.slot} now")
                    continue
            assert target is not None
            command: Piece | list[Piece] = data
            if asking:
                command = [_ASKING, *(data if isinstance(data, list) else [data])]
            try:
                return await self._nodes(target).submit(command, replies + asking)
            except RESENDABLE as exc:
                error, asked = exc, target
            except RedisUnavailable:
                router.refresh_soon()
                raise
        raise RedisUnavailable(f"cluster slot {self.slot}: gave up after retries ({error})")
