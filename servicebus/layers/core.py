"""RedisChannelLayer: an atomic, batched, at-most-once channel layer, wire-compatible with
channels_redis, on the layer's own RESP client."""

from __future__ import annotations

import asyncio
import binascii
import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from channels.layers import BaseChannelLayer

from ..backoff import Backoff
from .batching import SendCoalescer
from .codec import Codec
from .connections import ShardClients
from .drain import Drainer, LocalBuffers
from .errors import ForeignChannelError, RedisConfigError, RedisUnavailable
from .groups import group_members
from .hosts import decode_hosts, parse_host
from .loops import LoopState, close_with_loop
from .resp import pack
from .scripts import DELETE_PREFIX, GROUP_MEMBERS, SEND_MANY
from .sentinel import check_host
from .stats import DropListener, LayerStats

logger = logging.getLogger(__name__)

# Below this a BZMPOP timeout rounds to 0 ms, which Redis reads as "block forever".
_MIN_BLOCK = 0.01

# Bound of the per-layer caches of validated channel names (cleared when reached).
_MAX_CACHED_NAMES = 4096


class RedisChannelLayer(BaseChannelLayer):
    """Redis channel layer with atomic capacity-checked, coalesced sends and batch receives.

    Delivery is at-most-once: every message is popped atomically (BZMPOP/ZMPOP), so two
    consumers never both get it; a message taken by a process that then dies is lost,
    never redelivered. The wire format (keys, sorted-set members, scores, groups) is
    channels_redis's, so stock processes can talk to this layer both ways.

    Sends issued in the same event-loop tick are coalesced per shard into one Lua call
    (expiry cleanup + capacity check + ZADD + EXPIRE). A full channel raises
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
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity)
        if not isinstance(prefix, str):
            raise TypeError("prefix must be a str")  # stock asserts the same
        if block_timeout < 0.05:
            raise ValueError("block_timeout must be at least 0.05 s")
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
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
        # Raw (member, score) pairs popped for a receive_many that was cancelled meanwhile.
        self._leftovers: dict[str, deque[list[Any]]] = {}
        # Validated channel names -> (key, capacity, shard, local); see _send_target.
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
        """The shard of a name: channels_redis's CRC32 ring."""
        if self.ring_size == 1:
            return 0
        if isinstance(value, str):
            value = value.encode("utf8")
        return int((binascii.crc32(value) & 0xFFF) / (4096 / float(self.ring_size)))

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new process-local channel name (``prefix.<client>!<random>``)."""
        return f"{prefix}.{self.client_prefix}!{uuid.uuid4().hex}"

    def _group_key(self, group: str) -> bytes:
        return f"{self.prefix}:group:{group}".encode()

    def _send_target(self, channel: str) -> tuple[str, int, int, bool]:
        """(key, capacity, shard, local) of a valid channel name, computed once per name."""
        target = self._targets.get(channel)
        if target is None:
            self.require_valid_channel_name(channel)  # TypeError, as stock
            local = "!" in channel
            name = self.non_local_name(channel) if local else channel
            # Every channel kind hashes its non-local name, so send and receive agree.
            target = (
                self.prefix + name,
                self.get_capacity(channel),
                self.consistent_hash(name),
                local,
            )
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

    def _shard(self, state: LoopState, index: int) -> ShardClients:
        clients = state.shards.get(index)
        if clients is None:
            clients = state.shards[index] = ShardClients(
                self._specs[index],
                asyncio.get_running_loop(),
                max_blocking=self.max_blocking_connections,
            )
        return clients

    def _coalescer(self, index: int) -> SendCoalescer:
        state = self._state()
        coalescer = state.coalescers.get(index)
        if coalescer is None:
            coalescer = state.coalescers[index] = SendCoalescer(
                self._shard(state, index).commands,
                asyncio.get_running_loop(),
                expiry=int(self.expiry),
                max_batch=self.max_batch,
                stats=self.stats,
            )
        return coalescer

    # ---- native API: check, raw commands ------------------------------------------

    async def check(self) -> None:
        """Connect to every shard (AUTH, SELECT, version); raise what is wrong.

        RedisConfigError subclasses (auth, TLS, version) are fatal; RedisUnavailable is
        transient (retry later).
        """
        for spec in self._specs:
            await check_host(spec)

    async def command(self, key: str | bytes, *args: Any) -> Any:
        """Run one raw command on the shard owning ``key`` (error replies raise)."""
        clients = self._shard(self._state(), self.consistent_hash(key))
        return await clients.commands.submit(pack(args))

    async def pipeline(self, key: str | bytes, commands: list[list[Any]]) -> list[Any]:
        """Run raw commands in one round trip on the shard owning ``key``."""
        clients = self._shard(self._state(), self.consistent_hash(key))
        return await clients.commands.pipeline(commands)

    # ---- send ---------------------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send a message; raises ChannelFull at once when the channel is at capacity."""
        await self.send_nowait(channel, message)

    def send_nowait(self, channel: str, message: dict[str, Any]) -> asyncio.Future[None]:
        """Queue a send without waiting for Redis; the future fails with ChannelFull etc.

        For callers that have something else to wait for (a reply): it saves a task
        switch per message. Misuse and serialization errors raise here, before anything
        is sent.
        """
        if not isinstance(message, dict):
            raise AssertionError("message is not a dict")  # stock asserts
        if "__asgi_channel__" in message:
            raise AssertionError("'__asgi_channel__' is reserved")
        key, capacity, index, local = self._send_target(channel)
        if local:
            message = {**message, "__asgi_channel__": channel}
        return self._coalescer(index).submit(key, self._codec.member(message), capacity, channel)

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
        clients = self._shard(state, self.consistent_hash(channel))
        backoff = Backoff(0.05, 1.0)
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
                        pop = clients.commands.submit(
                            pack(("ZMPOP", 1, key, "MIN", "COUNT", max_count))
                        )
                    else:
                        pop = await clients.blocking.send(
                            pack(("BZMPOP", block, 1, key, "MIN", "COUNT", max_count)),
                            block + clients.pop_margin,
                        )
                reply = await self._await_pop(state, channel, pop)
            except RedisConfigError:
                raise  # wrong password, TLS, version: no retry can fix it
            except RedisUnavailable as exc:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                logger.warning("receive on %s: Redis unavailable (%s), retrying", channel, exc)
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
        leftovers = self._leftovers.get(channel)
        while leftovers:
            pairs = [leftovers.popleft() for _ in range(min(max_count, len(leftovers)))]
            messages = self._decode_pairs(pairs)
            if messages:
                return messages
        return []

    async def _await_pop(self, state: LoopState, channel: str, pop: asyncio.Future[Any]) -> Any:
        # The pop's future is shielded: cancelling the caller must not drop a reply Redis
        # may already have sent. The orphaned pop is adopted by the next receive on the
        # channel, or its messages go to the leftovers buffer when it completes.
        try:
            return await asyncio.shield(pop)
        except asyncio.CancelledError:
            if pop.done():
                self._keep_leftovers(channel, pop)
            else:
                state.orphans.setdefault(channel, []).append(pop)
                pop.add_done_callback(functools.partial(self._orphan_done, state, channel))
            raise

    def _orphan_done(self, state: LoopState, channel: str, pop: asyncio.Future[Any]) -> None:
        orphans = state.orphans.get(channel)
        if orphans and pop in orphans:
            orphans.remove(pop)
            if not orphans:
                del state.orphans[channel]
            self._keep_leftovers(channel, pop)

    def _keep_leftovers(self, channel: str, pop: asyncio.Future[Any]) -> None:
        if pop.cancelled() or pop.exception() is not None:
            return
        reply = pop.result()
        if reply:
            self._leftovers.setdefault(channel, deque()).extend(reply[1])
            self.stats["kept_after_cancel"] += len(reply[1])

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
        drainer = Drainer(
            self._shard(state, self.consistent_hash(real)),
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
        await self.pipeline(
            group, [["ZADD", key, time.time(), channel], ["EXPIRE", key, self.group_expiry]]
        )

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; no error when it is not a member."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self.command(group, "ZREM", self._group_key(group), channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Broadcast at-most-once, one atomic script per shard; full members are counted."""
        self.require_valid_group_name(group)
        if not isinstance(message, dict):
            raise AssertionError("message is not a dict")
        state = self._state()
        commands = self._shard(state, self.consistent_hash(group)).commands
        cutoff = int(time.time()) - self.group_expiry
        raw = await GROUP_MEMBERS(commands, [self._group_key(group)], [cutoff])
        channels = [bytes(name).decode("utf8") for name in raw]
        if not channels:
            return
        dropped = 0
        by_shard = group_members(self, channels, message)
        for index, keyed in by_shard.items():
            now = time.time()
            args: list[Any] = [now, int(self.expiry)]
            for member, capacity in keyed.values():
                args += (member, capacity, now)
            shard = self._shard(state, index).commands
            statuses = await SEND_MANY(shard, list(keyed), args)
            dropped += statuses.count(0)
        if dropped:
            self.stats.drop("group_member_full", dropped)
            logger.warning(
                "group_send to %s: %d of %d channels full, message dropped for them",
                group,
                dropped,
                len(channels),
            )

    # ---- flush / close -----------------------------------------------------------

    async def flush(self) -> None:
        """Delete every key of this prefix on every shard, and all locally buffered messages."""
        state = self._state()
        for index in range(self.ring_size):
            await DELETE_PREFIX(self._shard(state, index).commands, [], [self.prefix + "*"])
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
