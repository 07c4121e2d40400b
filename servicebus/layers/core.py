"""RedisChannelLayer: an atomic, batched, at-most-once channel layer, wire-compatible with
channels_redis, on the layer's own RESP client."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, overload

from channels.layers import BaseChannelLayer

from ..backoff import Backoff
from ..conf import REPLY_CHANNEL_PREFIX
from .batching import SendCallback, SendCoalescer
from .cluster import RESENDABLE
from .codec import Codec
from .connections import ShardClients
from .drain import Drainer, LocalBuffers
from .errors import ForeignChannelError, RedisConfigError, RedisUnavailable
from .groups import send_to_channels
from .hosts import decode_hosts, parse_host
from .leftovers import Leftovers
from .loops import LoopState, close_with_loop
from .pool import Commands
from .resp import pack
from .routing import ClusterRouting, Routing, ShardRouting, ring_index
from .scripts import GROUP_MEMBERS
from .stats import DropListener, LayerStats

logger = logging.getLogger(__name__)

# Below this a BZMPOP timeout rounds to 0 ms, which Redis reads as "block forever".
_MIN_BLOCK = 0.01

# Bound of the per-layer caches of validated channel names (cleared when reached).
_MAX_CACHED_NAMES = 4096
# servicebus's reply channels, matched by get_capacity (see reply_capacity).
_REPLY_CHANNELS = re.compile(re.escape(REPLY_CHANNEL_PREFIX + "."))


def _why(error: BaseException) -> str:
    return "Redis unavailable" if isinstance(error, RedisUnavailable) else "not served here now"


class RedisChannelLayer(BaseChannelLayer):
    """Redis channel layer with atomic capacity-checked, coalesced sends and batch receives.

    Delivery is at-most-once: every message is popped atomically (BZMPOP/ZMPOP), so two
    consumers never both get it; a message taken by a process that then dies is lost,
    never redelivered. The wire format (keys, sorted-set members, scores, groups) is
    channels_redis's, so stock processes can talk to this layer both ways.

    Sends issued in the same event-loop tick are coalesced per shard (per slot on a
    Redis Cluster, ``cluster=True``) into one Lua call (expiry cleanup + capacity
    check + ZADD + EXPIRE). A full channel raises
    ``ChannelFull``. While Redis is down, sends fail at once with ``RedisUnavailable``
    and receives retry with a backoff; ``RedisConfigError`` (auth, TLS, version) is never
    retried. Counters are in ``stats`` (see ``STAT_NAMES``). Needs Redis >= 7.0.
    """

    extensions = ["groups", "flush"]

    def __init__(
        self,
        hosts: Any = None,
        prefix: str = "asgi",
        expiry: int = 60,
        group_expiry: int = 86400,
        capacity: int = 100,
        channel_capacity: dict[str, int] | None = None,
        symmetric_encryption_keys: list[str | bytes] | None = None,
        random_prefix_length: int = 12,
        serializer_format: str = "msgpack",
        *,
        max_batch: int = 64,
        block_timeout: float = 1.0,
        drain_batch: int = 64,
        max_connections: int | None = None,
        max_blocking_connections: int = 1024,
        cluster: bool = False,
        reply_capacity: int = 10_000,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity)
        if isinstance(reply_capacity, bool) or not isinstance(reply_capacity, int):
            raise TypeError("reply_capacity must be an int")
        if reply_capacity < 1:
            raise ValueError("reply_capacity must be at least 1")
        # A refused reply is a lost call, not backpressure: a process's reply key holds at
        # most its calls in flight (and late replies until they expire).
        self.reply_capacity = max(reply_capacity, capacity)
        if not isinstance(prefix, str):
            raise TypeError("prefix must be a str")  # stock asserts the same
        if block_timeout < 0.05:
            raise ValueError("block_timeout must be at least 0.05 s")
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        # Last: a pattern the user gave for reply channels wins (get_capacity's first match).
        self.channel_capacity.append((_REPLY_CHANNELS, self.reply_capacity))
        self.group_expiry = group_expiry
        self.prefix = prefix
        self.hosts = decode_hosts(hosts)
        self.ring_size = len(self.hosts)
        self._specs = [parse_host(host) for host in self.hosts]
        self.max_batch = max_batch
        self.block_timeout = block_timeout
        self.drain_batch = drain_batch
        # Accepted for old settings; commands share one pipelined connection per shard.
        self.max_connections = max_connections
        self.max_blocking_connections = max_blocking_connections
        self.stats = LayerStats()
        self.cluster = bool(cluster)
        # ``hosts`` are the shards of a ring, or the seed nodes of one Redis Cluster.
        self._routing: Routing = (
            ClusterRouting(self._specs, self.stats, max_blocking=max_blocking_connections)
            if self.cluster
            else ShardRouting(self._specs, max_blocking=max_blocking_connections)
        )
        self._codec = Codec(
            serializer_format,
            random_prefix_length=random_prefix_length,
            expiry=int(expiry),
            symmetric_encryption_keys=symmetric_encryption_keys,
            stats=self.stats,
        )
        self.client_prefix = uuid.uuid4().hex
        self._local_suffix = self.client_prefix + "!"
        self._loops: dict[asyncio.AbstractEventLoop, LoopState] = {}
        self._buffers = LocalBuffers(self.get_capacity, expiry, self.stats)
        self._leftovers = Leftovers(self.stats)
        # Validated channel names -> (key, capacity, route, local); see _send_target.
        self._targets: dict[str, tuple[str, int, int, bool]] = {}
        self._receivable: set[str] = set()

    def __str__(self) -> str:
        return f"{self.__class__.__name__}(hosts={self.hosts})"

    # ---- messages and routing -----------------------------------------------------

    @property
    def on_drop(self) -> DropListener | None:
        """Called as ``on_drop(reason, count)`` for every message the layer drops."""
        return self.stats.on_drop

    @on_drop.setter
    def on_drop(self, listener: DropListener | None) -> None:
        self.stats.on_drop = listener

    def serialize(self, message: dict[str, Any]) -> bytes:
        """channels_redis's format: random prefix + msgpack (or encrypted)."""
        return self._codec.serialize(message)

    def deserialize(self, member: bytes) -> Any:
        """The message in a sorted-set member (raises if unreadable)."""
        return self._codec.deserialize(member)

    def decode_member(self, member: bytes) -> tuple[dict[str, Any], Any] | None:
        """(message, channel tag) of a member; None, counted by reason, if malformed."""
        return self._codec.decode_member(member)

    def consistent_hash(self, value: str | bytes) -> int:
        """The shard of a name: channels_redis's CRC32 ring (not used on a cluster)."""
        return ring_index(value, self.ring_size)

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new process-local channel name (``prefix.<client>!<random>``)."""
        return f"{prefix}.{self.client_prefix}!{uuid.uuid4().hex}"

    def _group_key(self, group: str) -> bytes:
        return f"{self.prefix}:group:{group}".encode()

    def _send_target(self, channel: str) -> tuple[str, int, int, bool]:
        """(key, capacity, route, local) of a valid channel name, computed once per name."""
        target = self._targets.get(channel)
        if target is None:
            self.require_valid_channel_name(channel)  # TypeError, as stock
            local = "!" in channel
            name = self.non_local_name(channel) if local else channel
            key = self.prefix + name
            # Every channel kind routes by its non-local name (its key), so send and
            # receive agree: a process's '!' key holds all its reply channels.
            target = (key, self.get_capacity(channel), self._routing.route(name, key), local)
            if len(self._targets) >= _MAX_CACHED_NAMES:
                self._targets.clear()
            self._targets[channel] = target
        return target

    # ---- per-loop clients -----------------------------------------------------------

    def _state(self) -> LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = LoopState()
            close_with_loop(loop, functools.partial(self._loops.pop, loop, None))
        return state

    def _coalescer(self, route: int) -> SendCoalescer:
        state = self._state()
        coalescer = state.coalescers.get(route)
        if coalescer is None:
            coalescer = state.coalescers[route] = SendCoalescer(
                self._routing.commands(state, route),
                asyncio.get_running_loop(),
                expiry=int(self.expiry),
                max_batch=self.max_batch,
                stats=self.stats,
            )
        return coalescer

    # ---- native API: check, raw commands ------------------------------------------

    async def check(self) -> None:
        """Connect to every shard or cluster master (AUTH, SELECT, version); raise what is wrong.

        RedisConfigError subclasses (auth, TLS, version) are fatal; RedisUnavailable is
        transient (retry later).
        """
        await self._routing.check()

    async def command(self, key: str | bytes, *args: Any) -> Any:
        """Run one raw command on the shard (or cluster slot) owning ``key``."""
        return await self._routing.command(self._state(), key, args)

    async def pipeline(self, key: str | bytes, commands: list[list[Any]]) -> list[Any]:
        """Run raw commands in one round trip on the shard owning ``key``.

        On a cluster each command goes to the master of its own first key (its first
        argument; ``key`` for a command without one): one round trip per master.
        """
        return await self._routing.pipeline(self._state(), key, commands)

    # ---- send ---------------------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send a message; raises ChannelFull at once when the channel is at capacity."""
        await self.send_nowait(channel, message)

    @overload
    def send_nowait(self, channel: str, message: dict[str, Any]) -> asyncio.Future[None]: ...

    @overload
    def send_nowait(
        self, channel: str, message: dict[str, Any], callback: SendCallback
    ) -> None: ...

    def send_nowait(
        self, channel: str, message: dict[str, Any], callback: SendCallback | None = None
    ) -> asyncio.Future[None] | None:
        """Queue a send without waiting for Redis; the future fails with ChannelFull etc.

        For callers that have something else to wait for (a reply): it saves a task
        switch per message. With ``callback``, no future: ``callback(None)`` or
        ``callback(error)`` is called as soon as Redis answered (no loop callback per
        message). Misuse and serialization errors raise here, before anything is sent.
        """
        if not isinstance(message, dict):
            raise AssertionError("message is not a dict")  # stock asserts
        if "__asgi_channel__" in message:
            raise AssertionError("'__asgi_channel__' is reserved")
        key, capacity, index, local = self._send_target(channel)
        if local:
            message = {**message, "__asgi_channel__": channel}
        coalescer = self._coalescer(index)
        if callback is None:
            return coalescer.submit(key, self._codec.member(message), capacity, channel)
        coalescer.submit_with(key, self._codec.member(message), capacity, channel, callback)
        return None

    # ---- receive ------------------------------------------------------------------

    async def receive(self, channel: str) -> dict[str, Any]:
        """Wait for the next message on ``channel`` (normal or ``!``)."""
        if "!" in channel:
            return await self._receive_local(channel)
        return (await self.receive_many(channel, 1))[0]

    async def receive_many(
        self, channel: str, max_count: int, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Pop up to ``max_count`` messages of a normal channel in one round trip.

        On a ``!`` channel it takes up to ``max_count`` messages already drained.
        Waits up to ``timeout`` seconds (None: forever) for at least one; ``[]`` on timeout.
        Cancelling a call never cancels its pop: the next receive/receive_many on the
        same channel (same loop) adopts it, or its messages are kept in a local buffer
        for the next call (``stats["kept_after_cancel"]``).
        """
        if max_count < 1:
            raise ValueError("max_count must be at least 1")
        if "!" in channel:
            # Already popped into this process: hand over what is buffered, in one wake.
            waiting = self._receive_local(channel, max_count)
            if timeout is None:
                return await waiting
            try:
                return await asyncio.wait_for(waiting, timeout)
            except TimeoutError:
                return []
        if channel not in self._receivable:
            self.require_valid_channel_name(channel, receive=True)  # TypeError, as stock
            if len(self._receivable) >= _MAX_CACHED_NAMES:
                self._receivable.clear()
            self._receivable.add(channel)
        deadline = None if timeout is None else time.monotonic() + timeout
        key = self.prefix + channel
        state = self._state()
        routing = self._routing
        route = routing.route(channel, key)
        backoff = Backoff(0.05, 1.0)
        clients: ShardClients | None = None
        while True:
            # Checked on every turn, so a cancelled pop's messages wait at most one block.
            messages = self._take_leftovers(channel, max_count)
            if messages:
                return messages
            final = False
            try:
                orphans = state.orphans.get(channel)
                if orphans:
                    # Adopt a pop whose caller was cancelled instead of starting another.
                    pop = orphans.pop()
                    if not orphans:
                        del state.orphans[channel]
                else:
                    block = self.block_timeout
                    if deadline is not None:
                        block = min(block, deadline - time.monotonic())
                    final = block < _MIN_BLOCK
                    if final:
                        pop = routing.commands(state, route).submit(
                            pack(("ZMPOP", 1, key, "MIN", "COUNT", max_count))
                        )
                    else:
                        # Asked on every turn: a cluster slot may have a new master.
                        clients = await routing.clients(state, route)
                        pop = await clients.blocking.send(
                            pack(("BZMPOP", block, 1, key, "MIN", "COUNT", max_count)),
                            block + clients.pop_margin,
                        )
                reply = await self._leftovers.wait(state, channel, pop)
            except RedisConfigError:
                raise  # wrong password, TLS, version: no retry can fix it
            except (RedisUnavailable, *RESENDABLE) as exc:
                # Unreachable, or (nothing was popped) moved, busy, or no longer a master.
                routing.failed(exc)
                if clients is not None:
                    clients.blocking.discard_idle()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                logger.warning("receive on %s: %s (%s), retrying", channel, _why(exc), exc)
                delay = backoff.next()
                await asyncio.sleep(delay if remaining is None else min(delay, remaining))
                continue
            backoff.reset()
            if reply:
                messages = self._decode_pairs(reply[1])
                if messages:
                    return messages
            if final:
                return []

    def _take_leftovers(self, channel: str, max_count: int) -> list[dict[str, Any]]:
        while pairs := self._leftovers.take(channel, max_count):
            messages = self._decode_pairs(pairs)
            if messages:
                return messages
        return []

    def _decode_pairs(self, pairs: list[list[Any]]) -> list[dict[str, Any]]:
        # Stock group_send tags messages to normal channels too: the tag is dropped.
        return [
            message for message, _ in self._codec.decode_pairs(pairs, time.time() - self.expiry)
        ]

    # ---- process-local ('!') channels ---------------------------------------------

    async def _receive_local(self, channel: str, max_count: int = 1) -> Any:
        key, real = self._local_key(channel)
        self._ensure_drainer(key, real)
        if max_count == 1:
            return await self._buffers.get(channel)
        return await self._buffers.get_many(channel, max_count)

    async def listen_local(
        self, channel: str, callback: Callable[[list[dict[str, Any]]], None]
    ) -> None:
        """Deliver every message of ``!`` channel ``channel`` to ``callback``.

        The drainer calls ``callback(messages)`` with each batch as it pops it (on this
        loop; a drainer of another loop schedules the call here), instead of buffering
        it for ``receive``: no task wake-up per batch. Runs until cancelled; then the
        channel's messages are buffered for ``receive`` again.
        """
        key, real = self._local_key(channel)
        loop = asyncio.get_running_loop()
        buffered = self._buffers.listen(channel, loop, callback)
        try:
            if buffered:
                callback(buffered)
            self._ensure_drainer(key, real)
            await loop.create_future()  # until cancelled
        finally:
            self._buffers.unlisten(channel, callback)

    def _local_key(self, channel: str) -> tuple[str, str]:
        self.require_valid_channel_name(channel)  # TypeError, as stock
        real = self.non_local_name(channel)
        if not real.endswith(self._local_suffix):
            raise ForeignChannelError(f"{channel!r} was not made by this layer's new_channel()")
        return self.prefix + real, real

    def _ensure_drainer(self, key: str, real: str) -> None:
        state = self._state()
        if key in state.drainers:
            return
        route = self._routing.route(real, key)
        drainer = Drainer(
            functools.partial(self._routing.clients, state, route),
            self._routing.failed,
            key,
            self._buffers,
            self._codec.decode_member,
            block_timeout=self.block_timeout,
            batch=self.drain_batch,
            stats=self.stats,
        )
        task = asyncio.get_running_loop().create_task(drainer.run())
        state.drainers[key] = task

        def forget(done: asyncio.Task[None]) -> None:
            if state.drainers.get(key) is done:
                del state.drainers[key]

        task.add_done_callback(forget)

    # ---- groups --------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (refreshing its group_expiry)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        key = self._group_key(group)
        await self._group_commands(group).pipeline(
            [["ZADD", key, time.time(), channel], ["EXPIRE", key, self.group_expiry]]
        )

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; no error when it is not a member."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self._group_commands(group).execute("ZREM", self._group_key(group), channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Broadcast at-most-once, one atomic script per shard (per slot on a cluster).

        Full members are counted and logged; the script calls run concurrently.
        """
        self.require_valid_group_name(group)
        if not isinstance(message, dict):
            raise AssertionError("message is not a dict")
        state = self._state()
        cutoff = int(time.time()) - self.group_expiry
        raw = await GROUP_MEMBERS(self._group_commands(group), [self._group_key(group)], [cutoff])
        channels = [bytes(name).decode("utf8") for name in raw]
        if not channels:
            return
        dropped = await send_to_channels(
            self,
            self._routing.route,
            functools.partial(self._routing.commands, state),
            channels,
            message,
        )
        if dropped:
            self.stats.drop("group_member_full", dropped)
            logger.warning(
                "group_send to %s: %d of %d channels full, message dropped for them",
                group,
                dropped,
                len(channels),
            )

    def _group_commands(self, group: str) -> Commands:
        # The group key's shard (by group name) or cluster slot (by the key itself).
        route = self._routing.route(group, self._group_key(group))
        return self._routing.commands(self._state(), route)

    # ---- flush / close -----------------------------------------------------------

    async def flush(self) -> None:
        """Delete every key of this prefix on every shard or master, and all buffered messages."""
        await self._routing.delete_prefix(self._state(), self.prefix)
        self._buffers.clear()
        self._leftovers.clear()

    async def close(self) -> None:
        """Stop this loop's drainers and close its connections (other loops are untouched)."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.aclose()

    async def close_pools(self) -> None:
        """channels_redis name for close()."""
        await self.close()

    async def wait_received(self) -> None:
        """Nothing to wait for: there are no backup-queue cleaners here."""
