"""RedisChannelLayer: an atomic, batched, at-most-once channel layer on channels_redis."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgpack
from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer as StockRedisChannelLayer
from channels_redis.serializers import MsgPackSerializer
from redis.exceptions import AuthenticationError

from ..backoff import Backoff
from .batching import SendCoalescer
from .connections import TRANSIENT_ERRORS, ShardClients
from .drain import Drainer, LocalBuffers
from .loops import LoopState, close_with_loop
from .scripts import DELETE_PREFIX, GROUP_MEMBERS, SEND_MANY
from .stats import DropListener, LayerStats
from .wire import lane_of, pack

logger = logging.getLogger(__name__)

# Below this a BZMPOP timeout rounds to 0 ms, which Redis reads as "block forever".
_MIN_BLOCK = 0.01

# Bound of the per-layer cache of validated channel names (cleared when reached).
_MAX_CACHED_NAMES = 4096

# Idle pop connections kept per (loop, shard): one per channel popped concurrently.
_POP_LANE_KEEP = 16


class RedisChannelLayer(StockRedisChannelLayer):
    """Redis channel layer with atomic capacity-checked, coalesced sends and batch receives.

    Delivery is at-most-once: every message is popped atomically (BZMPOP/ZMPOP), so two
    consumers never both get it; a message taken by a process that then dies is lost,
    never redelivered. The wire format (keys, sorted-set members, scores, groups) is
    channels_redis's, so stock processes can talk to this layer both ways.

    Sends issued in the same event-loop tick are coalesced per shard into one Lua call
    (expiry cleanup + capacity check + ZADD + EXPIRE). A full channel raises
    ``ChannelFull``. While Redis is down, sends raise ``redis.exceptions.ConnectionError``
    / ``TimeoutError`` (or ``OSError``) at once and receives retry with a short backoff.
    Counters are in ``stats`` (see ``STAT_NAMES``). Needs Redis >= 7.0.
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
        max_connections: int = 64,
        max_blocking_connections: int = 1024,
    ) -> None:
        super().__init__(
            hosts=hosts,
            prefix=prefix,
            expiry=expiry,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
            symmetric_encryption_keys=symmetric_encryption_keys,
            random_prefix_length=random_prefix_length,
            serializer_format=serializer_format,
        )
        if block_timeout < 0.05:
            raise ValueError("block_timeout must be at least 0.05 s")
        self.max_batch = max_batch
        self.block_timeout = block_timeout
        self.drain_batch = drain_batch
        self.max_connections = max_connections
        self.max_blocking_connections = max_blocking_connections
        self.stats = LayerStats()
        self._loops: dict[asyncio.AbstractEventLoop, LoopState] = {}
        self._verified: set[int] = set()
        self._local_suffix = self.client_prefix + "!"
        self._buffers = LocalBuffers(self.get_capacity, expiry, self.stats)
        # Raw (member, score) pairs popped for a receive_many that was cancelled meanwhile.
        self._leftovers: dict[str, deque[list[Any]]] = {}
        # Validated channel names -> (key, capacity, shard, local); see _send_target.
        self._targets: dict[str, tuple[str, int, int, bool]] = {}
        self._receivable: set[str] = set()
        # Stock msgpack format without encryption: pack with a reused Packer per thread
        # (msgpack.packb builds a Packer and its buffer per call). Same bytes on the wire.
        self._fast_msgpack = (
            type(self._serializer) is MsgPackSerializer
            and self._serializer.crypter is None
            and self._serializer.random_prefix_length == random_prefix_length
        )
        self._packers = threading.local()

    # ---- connections ----------------------------------------------------------------

    def _state(self) -> LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = LoopState()
            close_with_loop(loop, functools.partial(self._loops.pop, loop, None))
        return state

    def _ready_coalescer(self, index: int) -> SendCoalescer | None:
        """This loop's coalescer for shard ``index`` if it exists already (no await)."""
        state = self._loops.get(asyncio.get_running_loop())
        return state.coalescers.get(index) if state is not None else None

    async def _shard(self, state: LoopState, index: int) -> ShardClients:
        clients = state.shards.get(index)
        if clients is None:
            clients = state.shards[index] = ShardClients(
                self.hosts[index],
                block_timeout=self.block_timeout,
                max_connections=self.max_connections,
                max_blocking_connections=self.max_blocking_connections,
            )
        if index not in self._verified:
            await clients.check_version()
            self._verified.add(index)
        return clients

    async def _coalescer(self, index: int) -> SendCoalescer:
        state = self._state()
        coalescer = state.coalescers.get(index)
        if coalescer is None:
            clients = await self._shard(state, index)
            coalescer = state.coalescers.get(index)
            if coalescer is None:
                coalescer = state.coalescers[index] = SendCoalescer(
                    clients.commands,
                    asyncio.get_running_loop(),
                    expiry=int(self.expiry),
                    max_batch=self.max_batch,
                    stats=self.stats,
                )
        return coalescer

    def serialize(self, message: dict[str, Any]) -> bytes:
        """channels_redis's format: random prefix + msgpack (or encrypted)."""
        if not self._fast_msgpack:
            return super().serialize(message)
        packers = self._packers
        try:
            packer = packers.packer
        except AttributeError:
            packer = packers.packer = msgpack.Packer()
        prefix_length = self._serializer.random_prefix_length
        if prefix_length > 0:
            return random.randbytes(prefix_length) + packer.pack(message)
        return packer.pack(message)

    # ---- send / receive -----------------------------------------------------------

    def _send_target(self, channel: str) -> tuple[str, int, int, bool]:
        """(key, capacity, shard, local) of a valid channel name, computed once per name."""
        target = self._targets.get(channel)
        if target is None:
            assert self.require_valid_channel_name(channel), "Channel name not valid"
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

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send a message; raises ChannelFull at once when the channel is at capacity."""
        assert isinstance(message, dict), "message is not a dict"
        assert "__asgi_channel__" not in message
        key, capacity, index, local = self._send_target(channel)
        if local:
            message = {**message, "__asgi_channel__": channel}
        coalescer = self._ready_coalescer(index) or await self._coalescer(index)
        status = await coalescer.submit(key, self.serialize(message), capacity)
        if not status:
            self.stats["channel_full"] += 1
            raise ChannelFull(channel)

    def send_nowait(self, channel: str, message: dict[str, Any]) -> asyncio.Future[None]:
        """Queue a send without waiting for Redis; the future fails with ChannelFull etc.

        For callers that have something else to wait for (a reply): it saves a task
        switch per message. Serialization errors still raise here, before anything is sent.
        """
        assert isinstance(message, dict), "message is not a dict"
        assert "__asgi_channel__" not in message
        key, capacity, index, local = self._send_target(channel)
        coalescer = self._ready_coalescer(index)
        loop = asyncio.get_running_loop()
        if coalescer is None:
            # First send of this loop to that shard: connecting needs an await.
            return loop.create_task(self.send(channel, message))
        if local:
            message = {**message, "__asgi_channel__": channel}
        status = coalescer.submit(key, self.serialize(message), capacity)
        done: asyncio.Future[None] = loop.create_future()

        def settle(future: asyncio.Future[int]) -> None:
            if done.done():
                return
            if future.cancelled():
                done.cancel()
            elif (exc := future.exception()) is not None:
                done.set_exception(exc)
            elif not future.result():
                self.stats["channel_full"] += 1
                done.set_exception(ChannelFull(channel))
            else:
                done.set_result(None)

        status.add_done_callback(settle)
        return done

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
        if "!" in channel:
            # Already popped into this process: hand over what is buffered, in one wake.
            if max_count < 1:
                raise ValueError("max_count must be at least 1")
            waiting = self._receive_local(channel, max_count)
            if timeout is None:
                return await waiting
            try:
                return await asyncio.wait_for(waiting, timeout)
            except TimeoutError:
                return []
        if channel not in self._receivable:
            assert self.require_valid_channel_name(channel, receive=True), "Channel name not valid"
            if len(self._receivable) >= _MAX_CACHED_NAMES:
                self._receivable.clear()
            self._receivable.add(channel)
        if max_count < 1:
            raise ValueError("max_count must be at least 1")
        deadline = None if timeout is None else time.monotonic() + timeout
        key = self.prefix + channel
        state = self._state()
        index = self.consistent_hash(channel)
        backoff = Backoff(0.05, 1.0)
        while True:
            # Checked on every turn, so a cancelled pop's messages wait at most one block.
            messages = self._take_leftovers(channel, max_count)
            if messages:
                return messages
            final = False
            try:
                clients = await self._shard(state, index)
                orphans = state.orphans.get(channel)
                if orphans:
                    # Adopt a pop whose caller was cancelled instead of starting another.
                    task = orphans.pop()
                    if not orphans:
                        del state.orphans[channel]
                else:
                    block = self.block_timeout
                    if deadline is not None:
                        block = min(block, deadline - time.monotonic())
                    final = block < _MIN_BLOCK
                    if final:
                        args: tuple[Any, ...] = ("ZMPOP", 1, key, "MIN", "COUNT", max_count)
                    else:
                        args = ("BZMPOP", block, 1, key, "MIN", "COUNT", max_count)
                    # Hand-packed on a held connection of the blocking pool (wire.Lane);
                    # its socket timeout (block_timeout + >= 1 s) outlasts the block.
                    lane = lane_of(clients.blocking.connection_pool, _POP_LANE_KEEP)
                    task = asyncio.ensure_future(lane.call(pack(args)))
                reply = await self._await_pop(state, channel, task)
            except AuthenticationError:
                raise  # a ConnectionError subclass, but no retry can fix it
            except TRANSIENT_ERRORS as exc:
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

    async def _await_pop(self, state: LoopState, channel: str, task: asyncio.Future[Any]) -> Any:
        # The pop runs in its own task behind a shield: cancelling the caller must not
        # cancel a pop Redis may already have served, or its messages would vanish.
        # The orphaned pop is adopted by the next receive on the channel, or its
        # messages go to the leftovers buffer when it completes.
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                self._keep_leftovers(channel, task)
            else:
                state.orphans.setdefault(channel, []).append(task)
                task.add_done_callback(functools.partial(self._orphan_done, state, channel))
            raise

    def _orphan_done(self, state: LoopState, channel: str, task: asyncio.Future[Any]) -> None:
        orphans = state.orphans.get(channel)
        if orphans and task in orphans:
            orphans.remove(task)
            if not orphans:
                del state.orphans[channel]
            self._keep_leftovers(channel, task)

    def _keep_leftovers(self, channel: str, task: asyncio.Future[Any]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        reply = task.result()
        if reply:
            self._leftovers.setdefault(channel, deque()).extend(reply[1])
            self.stats["kept_after_cancel"] += len(reply[1])

    @property
    def on_drop(self) -> DropListener | None:
        """Called as ``on_drop(reason, count)`` for every message the layer drops."""
        return self.stats.on_drop

    @on_drop.setter
    def on_drop(self, listener: DropListener | None) -> None:
        self.stats.on_drop = listener

    def decode_member(self, member: bytes) -> tuple[dict[str, Any], Any] | None:
        """One sorted-set member -> (message, its ``__asgi_channel__`` tag or None).

        Anything malformed is counted by reason (see ``STAT_NAMES``) and gives None:
        one bad member must never cost the other members of its batch.
        """
        try:
            message = self.deserialize(member)
        except Exception:
            self._malformed("undecodable", exc_info=True)
            return None
        if not isinstance(message, dict):
            self._malformed("not_a_dict")
            return None
        if "__asgi_channel__" not in message:
            return message, None
        target = message.pop("__asgi_channel__")
        # A '!' channel name, or the list of them stock group_send packs into one message.
        if isinstance(target, str) or (
            isinstance(target, list) and target and all(isinstance(c, str) for c in target)
        ):
            return message, target
        self._malformed("bad_channel")
        return None

    def _malformed(self, reason: str, exc_info: bool = False) -> None:
        self.stats.drop(reason)
        if self.stats.should_log(reason):
            logger.warning(
                "dropped a malformed message (%s; logged once a minute, counted in stats)",
                reason,
                exc_info=exc_info,
            )

    def _decode_pairs(self, pairs: list[list[Any]]) -> list[dict[str, Any]]:
        cutoff = time.time() - self.expiry
        messages = []
        expired = 0
        for member, score in pairs:
            if float(score) < cutoff:
                expired += 1
                continue
            # Stock group_send tags messages to normal channels too: the tag is dropped.
            decoded = self.decode_member(member)
            if decoded is not None:
                messages.append(decoded[0])
        if expired:
            self.stats.drop("expired", expired)
        return messages

    async def _receive_local(self, channel: str, max_count: int = 1) -> Any:
        key, real = self._local_key(channel)
        state = self._state()
        if key not in state.drainers:
            clients = await self._shard(state, self.consistent_hash(real))
            if key not in state.drainers:
                self._start_drainer(state, clients, key)
        if max_count == 1:
            return await self._buffers.get(channel)
        return await self._buffers.get_many(channel, max_count)

    async def listen_local(
        self, channel: str, callback: Callable[[list[dict[str, Any]]], None]
    ) -> None:
        """Extension: deliver every message of ``!`` channel ``channel`` to ``callback``.

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
            state = self._state()
            if key not in state.drainers:
                clients = await self._shard(state, self.consistent_hash(real))
                if key not in state.drainers:
                    self._start_drainer(state, clients, key)
            await loop.create_future()  # until cancelled
        finally:
            self._buffers.unlisten(channel, callback)

    def _local_key(self, channel: str) -> tuple[str, str]:
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        real = self.non_local_name(channel)
        if not real.endswith(self._local_suffix):
            raise ValueError(f"{channel!r} was not made by this layer's new_channel()")
        return self.prefix + real, real

    def _start_drainer(self, state: LoopState, clients: ShardClients, key: str) -> None:
        drainer = Drainer(
            clients.blocking,
            clients.commands,
            key,
            self._buffers,
            self.decode_member,
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

    # ---- native API used by servicebus.transport -----------------------------------

    async def check(self) -> None:
        """Connect to every shard: AUTH, SELECT and the server version (raises on failure)."""
        state = self._state()
        for index in range(self.ring_size):
            clients = await self._shard(state, index)
            await clients.check_version()

    async def command(self, key: str, *args: Any) -> Any:
        """Run one raw command on the shard owning ``key``."""
        clients = await self._shard(self._state(), self.consistent_hash(key))
        return await clients.commands.execute_command(*args)

    async def pipeline(self, key: str, commands: list[list[Any]]) -> list[Any]:
        """Run raw commands in one round trip on the shard owning ``key``."""
        clients = await self._shard(self._state(), self.consistent_hash(key))
        async with clients.commands.pipeline(transaction=False) as pipe:
            for args in commands:
                pipe.execute_command(*args)
            return list(await pipe.execute())

    # ---- groups --------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (refreshing its group_expiry)."""
        assert self.require_valid_group_name(group), "Group name not valid"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        clients = await self._shard(self._state(), self.consistent_hash(group))
        group_key = self._group_key(group)
        async with clients.commands.pipeline(transaction=False) as pipe:
            pipe.zadd(group_key, {channel: time.time()})
            pipe.expire(group_key, self.group_expiry)
            await pipe.execute()

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; no error when it is not a member."""
        assert self.require_valid_group_name(group), "Group name not valid"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        clients = await self._shard(self._state(), self.consistent_hash(group))
        await clients.commands.zrem(self._group_key(group), channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Broadcast at-most-once, one atomic script per shard; full members are counted."""
        assert self.require_valid_group_name(group), "Group name not valid"
        state = self._state()
        clients = await self._shard(state, self.consistent_hash(group))
        cutoff = int(time.time()) - self.group_expiry
        raw = await GROUP_MEMBERS(clients.commands, [self._group_key(group)], [cutoff])
        channels = [name.decode("utf8") for name in raw]
        if not channels:
            return
        by_shard, key_message, key_capacity = self._map_channel_keys_to_connection(
            channels, message
        )
        for index, keys in by_shard.items():
            shard = await self._shard(state, index)
            now = time.time()
            args: list[Any] = [now, int(self.expiry)]
            for key in keys:
                args.append(key_message[key])
                args.append(key_capacity[key])
                args.append(now)
            statuses = await SEND_MANY(shard.commands, keys, args)
            dropped = statuses.count(0)
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
            clients = await self._shard(state, index)
            await DELETE_PREFIX(clients.commands, [], [self.prefix + "*"])
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
