"""Process-local (``!``) channels: a drainer moves messages from Redis into local buffers.

All ``!`` channels of one layer share one sorted set per prefix
(``prefix + "specific.<client>!"``), as in channels_redis. A background task keeps
that key drained so one slow or absent reader can never fill it for the others.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..backoff import Backoff
from .cluster import RESENDABLE
from .connections import ShardClients
from .errors import RedisConfigError, RedisUnavailable
from .resp import RedisConnection, pack
from .stats import LayerStats

logger = logging.getLogger(__name__)

_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]
_Listener = Callable[[list[dict[str, Any]]], None]
_Decode = Callable[[bytes], "tuple[dict[str, Any], Any] | None"]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class LocalBuffers:
    """Bounded per-channel buffers shared by every event loop of one layer.

    A full buffer drops its oldest message (``local_buffer_full``); messages older
    than ``expiry`` are dropped on read or by ``sweep`` (``expired``).
    A lock guards them because drainers of loops in other threads fill them too.
    """

    def __init__(self, capacity_of: Callable[[str], int], expiry: float, stats: LayerStats) -> None:
        self._capacity_of = capacity_of
        self._expiry = expiry
        self._stats = stats
        self._lock = threading.Lock()
        self._buffers: dict[str, deque[tuple[float, dict[str, Any]]]] = {}
        self._waiters: dict[str, list[_Waiter]] = {}
        # Channels whose messages go straight to a callback (on its loop), not a buffer.
        self.listeners: dict[str, tuple[asyncio.AbstractEventLoop, _Listener]] = {}

    def listen(
        self, channel: str, loop: asyncio.AbstractEventLoop, callback: _Listener
    ) -> list[dict[str, Any]]:
        """Send ``channel``'s messages to ``callback`` (called on ``loop``) from now on.

        Returns the messages already buffered for it, for the caller to hand over.
        """
        with self._lock:
            self.listeners[channel] = (loop, callback)
            messages: list[dict[str, Any]] = []
            while (message := self._take(channel)) is not None:
                messages.append(message)
        return messages

    def unlisten(self, channel: str, callback: _Listener) -> None:
        """Stop calling ``callback``; later messages of ``channel`` are buffered again."""
        with self._lock:
            entry = self.listeners.get(channel)
            if entry is not None and entry[1] == callback:
                del self.listeners[channel]

    def deliver(self, channel: str, items: list[tuple[float, dict[str, Any]]]) -> None:
        """Hand ``(score, message)`` pairs to ``channel``'s listener (buffer them if none)."""
        cutoff = time.time() - self._expiry
        entry = self.listeners.get(channel)
        if entry is None:  # unregistered meanwhile
            for score, message in items:
                self.put(channel, score, message)
            return
        messages = [message for score, message in items if score >= cutoff]
        if len(messages) < len(items):
            self._stats.drop("expired", len(items) - len(messages))
        if not messages:
            return
        loop, callback = entry
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if loop is current:
            try:
                callback(messages)
            except Exception:
                logger.exception("listener of %s failed", channel)
        else:
            try:
                loop.call_soon_threadsafe(callback, messages)
            except RuntimeError:  # that loop closed meanwhile; nobody listens there
                pass

    def put(self, channel: str, score: float, message: dict[str, Any]) -> None:
        """Buffer one message and wake the channel's waiters."""
        with self._lock:
            buffer = self._buffers.get(channel)
            if buffer is None:
                buffer = self._buffers[channel] = deque(maxlen=self._capacity_of(channel))
            full = len(buffer) == buffer.maxlen
            buffer.append((score, message))
            waiters = self._waiters.pop(channel, None)
        if full:
            self._stats.drop("local_buffer_full")
        if waiters:
            try:
                current = asyncio.get_running_loop()
            except RuntimeError:
                current = None
            for loop, future in waiters:
                if loop is current:
                    _wake(future)
                else:
                    try:
                        loop.call_soon_threadsafe(_wake, future)
                    except RuntimeError:  # that loop closed meanwhile; nobody waits there
                        pass

    def _take(self, channel: str) -> dict[str, Any] | None:
        # Caller holds the lock.
        buffer = self._buffers.get(channel)
        if not buffer:
            return None
        cutoff = time.time() - self._expiry
        while buffer:
            score, message = buffer.popleft()
            if score >= cutoff:
                if not buffer:
                    del self._buffers[channel]
                return message
            self._stats.drop("expired")
        del self._buffers[channel]
        return None

    async def get(self, channel: str) -> dict[str, Any]:
        """Wait for the next message of ``channel``; cancelling loses nothing."""
        return (await self.get_many(channel, 1))[0]

    async def get_many(self, channel: str, max_count: int) -> list[dict[str, Any]]:
        """Wait for messages of ``channel``; return up to ``max_count`` (one wake for many)."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                messages: list[dict[str, Any]] = []
                while len(messages) < max_count:
                    message = self._take(channel)
                    if message is None:
                        break
                    messages.append(message)
                if messages:
                    return messages
                future: asyncio.Future[None] = loop.create_future()
                self._waiters.setdefault(channel, []).append((loop, future))
            try:
                await future
            finally:
                # put() unregisters the waiters it wakes; a cancelled one must go too.
                with self._lock:
                    waiters = self._waiters.get(channel)
                    if waiters and (loop, future) in waiters:
                        waiters.remove((loop, future))
                        if not waiters:
                            del self._waiters[channel]

    def sweep(self) -> None:
        """Drop messages older than ``expiry`` from every buffer (nobody may ever read them)."""
        cutoff = time.time() - self._expiry
        expired = 0
        with self._lock:
            for channel in list(self._buffers):
                buffer = self._buffers[channel]
                while buffer and buffer[0][0] < cutoff:
                    buffer.popleft()
                    expired += 1
                if not buffer:
                    del self._buffers[channel]
        if expired:
            self._stats.drop("expired", expired)

    def clear(self) -> None:
        """Forget every buffered message (flush)."""
        with self._lock:
            self._buffers.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(b) for b in self._buffers.values())


class Drainer:
    """Keeps one shared ``!`` key drained into LocalBuffers, in batches (BZMPOP COUNT).

    ``run`` is supervised: an unexpected error is logged, counted
    (``drainer_restarts``) and the drain loop restarted after a backoff, so one bad
    batch can never leave a process deaf. The drainer holds one connection of the
    blocking pool. When it is stopped (cancelled: close(), asyncio.run() ending) in the
    middle of a pop, it unblocks that pop server-side with CLIENT UNBLOCK and hands out
    whatever the pop already took, so stopping one loop's drainer never loses another
    loop's replies. ``clients()`` names the Redis that serves the key now (asked again
    after a failure: a Sentinel or Cluster failover moves it); ``failed(error)`` tells
    the routing what went wrong.
    """

    def __init__(
        self,
        clients: Callable[[], Awaitable[ShardClients]],
        failed: Callable[[BaseException], None],
        key: str,
        buffers: LocalBuffers,
        decode: _Decode,
        *,
        block_timeout: float,
        batch: int,
        stats: LayerStats,
    ) -> None:
        self._route = clients
        self._failed = failed
        self._clients: ShardClients | None = None
        self._key = key
        self._buffers = buffers
        self._decode = decode
        self._stats = stats
        self._conn: RedisConnection | None = None
        self._pop_command = pack(("BZMPOP", block_timeout, 1, key, "MIN", "COUNT", batch))
        self._block_timeout = block_timeout
        self._timeout = block_timeout

    async def run(self) -> None:
        """Drain until cancelled; restart the drain loop after any unexpected error."""
        backoff = Backoff()
        while True:
            started = time.monotonic()
            try:
                await self._drain()
            except Exception:
                self._stats["drainer_restarts"] += 1
                logger.exception("drainer for %s failed; restarting it", self._key)
                if time.monotonic() - started > 10 * backoff.maximum:
                    backoff.reset()  # it ran fine for a while: a fresh fault, a short wait
                await asyncio.sleep(backoff.next())

    async def _drain(self) -> None:
        backoff = Backoff()
        last_sweep = time.monotonic()
        try:
            while True:
                try:
                    reply = await self._pop()
                except RedisConfigError:
                    raise  # not transient: the supervisor logs it and retries slowly
                except (RedisUnavailable, *RESENDABLE) as exc:
                    # Unreachable; or moved, busy, no longer a master (nothing was popped).
                    clients = self._clients
                    self._drop_connection()
                    if clients is not None:
                        clients.blocking.discard_idle()
                    self._failed(exc)
                    logger.warning("drainer for %s: %s, retrying", self._key, exc)
                    await asyncio.sleep(backoff.next())
                    continue
                backoff.reset()
                if reply:
                    self._dispatch(reply[1])
                now = time.monotonic()
                if now - last_sweep >= 1.0:
                    last_sweep = now
                    self._buffers.sweep()
        finally:
            self._release()

    async def _pop(self) -> Any:
        conn = self._conn
        if conn is None or not conn.is_open:
            self._release()
            clients = self._clients = await self._route()
            self._timeout = self._block_timeout + clients.pop_margin
            conn = self._conn = await clients.blocking.acquire()
        pop = conn.send(self._pop_command, self._timeout)
        try:
            return await asyncio.shield(pop)
        except asyncio.CancelledError:
            await self._unblock(conn, pop)
            raise

    async def _unblock(self, conn: RedisConnection, pop: asyncio.Future[Any]) -> None:
        # Cancelling the pop would drop what Redis may already have popped for us.
        # CLIENT UNBLOCK makes it return at once; repeat it in case the BZMPOP had
        # not reached Redis yet. If it is refused (ACL), the pop ends on its own.
        deadline = time.monotonic() + self._timeout
        clients = self._clients
        while clients is not None and not pop.done() and time.monotonic() < deadline:
            try:
                # The command connection to the same server as the pop's.
                await clients.commands.execute("CLIENT", "UNBLOCK", conn.client_id)
            except Exception as exc:
                logger.debug("CLIENT UNBLOCK failed (%s); waiting for the pop", exc)
                await asyncio.wait([pop], timeout=max(0.0, deadline - time.monotonic()))
                break
            await asyncio.wait([pop], timeout=0.05)
        if not pop.done():
            self._drop_connection()
            return
        if not pop.cancelled() and pop.exception() is None:
            reply = pop.result()
            if reply:
                self._dispatch(reply[1])

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._release()

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._clients is not None:
            self._clients.blocking.release(conn)

    def _dispatch(self, pairs: list[list[Any]]) -> None:
        buffers = self._buffers
        listeners = buffers.listeners
        direct: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        for member, raw_score in pairs:
            score = float(raw_score)
            # Each member on its own: a malformed one is counted and skipped by decode.
            decoded = self._decode(member)
            if decoded is None:
                continue
            message, target = decoded
            if target is None:
                # A '!' key member must say which local channel it is for.
                self._stats.drop("bad_channel")
                continue
            # group_send packs every local member of the group into one message.
            for i, channel in enumerate([target] if isinstance(target, str) else target):
                copy = message if i == 0 else dict(message)
                if channel in listeners:
                    direct.setdefault(channel, []).append((score, copy))
                else:
                    buffers.put(channel, score, copy)
        # One call per listening channel and batch: its replies in one go, no wake-ups.
        for channel, items in direct.items():
            buffers.deliver(channel, items)
