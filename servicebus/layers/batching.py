"""Send coalescing: all sends of one event-loop tick to one shard go in one script call."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from channels.exceptions import ChannelFull

from .errors import (
    RedisCommandError,
    RedisNoScriptError,
    RedisRoleChanged,
    RedisUnavailable,
    reply_error,
)
from .pool import Commands
from .resp import BIG_PIECE, Piece, bulk, pack, pack_pieces
from .scripts import SEND_MANY
from .stats import LayerStats

logger = logging.getLogger(__name__)

#: Told how a send ended: None when Redis took it, else the error (ChannelFull, ...).
SendCallback = Callable[[BaseException | None], None]

# (key, member, capacity, channel, the sender's future or callback)
_Member = bytes | tuple[bytes, Piece]  # see Codec.member
_Pending = tuple[str, _Member, int, str, "asyncio.Future[None] | SendCallback"]

#: Bytes of members per send script call at most (a larger message goes in a call alone).
MAX_BATCH_BYTES = 256 * 1024

#: A member at least this long is added without Lua (see SendCoalescer._send_direct):
#: handing a script an argument costs Redis a copy into Lua and back, about 1.2 ms per MB
#: (a 1 MB message cost 2.3 ms in SEND_MANY, 0.7 ms as plain commands in MULTI/EXEC).
DIRECT_MIN = 256 * 1024

_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"

# Bound of the caches of encoded keys (cleared when reached).
_MAX_CACHED = 4096

# 1 us: above a double's resolution for epoch seconds (~0.24 us), far below clock skew.
_SCORE_STEP = 1e-6


def _tell(callback: SendCallback, error: BaseException | None) -> None:
    # Called while a reply is being read: a failing callback must not stop the others.
    try:
        callback(error)
    except Exception:
        logger.exception("a send callback failed")


def _length(member: _Member) -> int:
    return len(member) if isinstance(member, bytes) else len(member[0]) + len(member[1])


def _member_pieces(member: _Member) -> list[Piece]:
    """One RESP bulk string of a member, its large parts uncopied."""
    parts = (member,) if isinstance(member, bytes) else member
    return [b"$%d\r\n" % sum(map(len, parts)), *parts, b"\r\n"]


def _member_arg(member: _Member) -> list[bytes]:
    # pack_pieces takes whole arguments; (prefix, payload) is joined only on this rare path.
    return [member if isinstance(member, bytes) else member[0] + member[1]]


def _resolve(waiter: asyncio.Future[None] | SendCallback, error: BaseException | None) -> None:
    if not isinstance(waiter, asyncio.Future):
        _tell(waiter, error)
    elif waiter.done():
        return
    elif error is None:
        waiter.set_result(None)
    elif isinstance(error, asyncio.CancelledError):
        waiter.cancel()
    else:
        waiter.set_exception(error)


class SendCoalescer:
    """Collects sends for one (event loop, shard) and flushes them once per loop tick.

    Each flush writes SEND_MANY with up to ``max_batch`` messages per call, pipelined on
    the shard's command connection, so bursts overlap. A sender's future resolves to
    None (added) or fails with ChannelFull or the Redis error; no task per batch. A sender
    that gives a callback instead gets no future: the callback is called with None or the
    error right when the reply is read (no loop callback per message).
    """

    def __init__(
        self,
        client: Commands,
        loop: asyncio.AbstractEventLoop,
        *,
        expiry: int,
        max_batch: int,
        stats: LayerStats,
    ) -> None:
        self._client = client
        self._loop = loop
        self._expiry = expiry
        self._max_batch = max_batch
        self._stats = stats
        self._pending: list[_Pending] = []
        self._scheduled = False
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._last_score = 0.0
        self._expiry_bulk = bulk(expiry)
        self._key_bulks: dict[str, bytes] = {}
        self._capacity_bulks: dict[int, bytes] = {}

    def submit(
        self, key: str, member: _Member, capacity: int, channel: str
    ) -> asyncio.Future[None]:
        """Queue one message; the future resolves when Redis took it (or fails)."""
        future: asyncio.Future[None] = self._loop.create_future()
        self.submit_with(key, member, capacity, channel, future)
        return future

    def submit_with(
        self,
        key: str,
        member: _Member,
        capacity: int,
        channel: str,
        waiter: asyncio.Future[None] | SendCallback,
    ) -> None:
        """Queue one message; ``waiter`` (a future, or a SendCallback) learns the outcome."""
        self._pending.append((key, member, capacity, channel, waiter))
        if not self._scheduled:
            # call_soon runs after every callback already queued for this tick, so
            # sends from all tasks woken in the same tick end up in one batch.
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        if not pending:
            return
        # Scores (send times) strictly increase in submit order, so a channel stays
        # FIFO even within a batch and across the pipelined calls of one burst.
        score = max(time.time(), self._last_score + _SCORE_STEP)
        self._last_score = score + (len(pending) - 1) * _SCORE_STEP
        # Calls of at most max_batch messages and MAX_BATCH_BYTES: large messages go in
        # calls of their own, pipelined, so Redis runs one while the next is in transit.
        size = self._max_batch
        start = 0
        while start < len(pending):
            if _length(pending[start][1]) >= DIRECT_MIN:
                self._send_direct(pending[start], score + start * _SCORE_STEP)
                start += 1
                continue
            end = start
            nbytes = 0
            while end < len(pending) and end - start < size:
                length = _length(pending[end][1])
                if length >= DIRECT_MIN or (end > start and nbytes + length > MAX_BATCH_BYTES):
                    break
                nbytes += length
                end += 1
            parts, big = self._encode(pending[start:end], score + start * _SCORE_STEP)
            self._stats["script_calls"] += 1
            self._send(pending[start:end], parts, big, sha=True)
            start = end

    def _encode(self, batch: list[_Pending], first_score: float) -> tuple[list[Piece], bool]:
        """SEND_MANY's numkeys, keys and args, RESP-encoded (cached for repeated values).

        ARGV: now, expiry, then (member, capacity, score) per message; this runs for
        every message sent, so each triple is formatted in one step.
        """
        keys = self._key_bulks
        capacities = self._capacity_bulks
        if len(keys) > _MAX_CACHED:
            keys.clear()
        parts: list[Piece] = [bulk(len(batch))]
        for key, *_ in batch:
            encoded = keys.get(key)
            if encoded is None:
                encoded = keys[key] = bulk(key)
            parts.append(encoded)
        parts += (bulk(first_score), self._expiry_bulk)
        big = False
        for i, (_, member, capacity, _, _) in enumerate(batch):
            capacity_bulk = capacities.get(capacity)
            if capacity_bulk is None:
                capacity_bulk = capacities[capacity] = bulk(capacity)
            score = repr(first_score + i * _SCORE_STEP).encode()
            if type(member) is bytes and len(member) < BIG_PIECE:
                parts.append(
                    b"$%d\r\n%b\r\n%b$%d\r\n%b\r\n"
                    % (len(member), member, capacity_bulk, len(score), score)
                )
                continue
            # A large member: its own piece(s), never copied into a joined buffer.
            big = True
            pieces = member if isinstance(member, tuple) else (member,)
            parts.append(b"$%d\r\n" % sum(map(len, pieces)))
            parts += pieces
            parts.append(b"\r\n%b$%d\r\n%b\r\n" % (capacity_bulk, len(score), score))
        return parts, big

    def _send(
        self, batch: list[_Pending], parts: list[Piece], big: bool, sha: bool, resent: bool = False
    ) -> None:
        nargs = 1 + 2 + 4 * len(batch)  # numkeys, now, expiry; key + triple per message
        reply = self._client.submit(SEND_MANY.encoded(parts, nargs, sha=sha, big=big))
        self._in_flight.add(reply)
        reply.add_done_callback(functools.partial(self._settle, batch, parts, big, sha, resent))

    def _settle(
        self,
        batch: list[_Pending],
        parts: list[Piece],
        big: bool,
        sha: bool,
        resent: bool,
        reply: asyncio.Future[Any],
    ) -> None:
        self._in_flight.discard(reply)
        if reply.cancelled():
            for *_, waiter in batch:
                _resolve(waiter, asyncio.CancelledError())
            return
        exc = reply.exception()
        if isinstance(exc, RedisNoScriptError) and sha:
            # Redis restarted or its scripts were flushed: EVAL runs and caches it again.
            self._send(batch, parts, big, sha=False, resent=resent)
            return
        if isinstance(exc, RedisRoleChanged) and not resent:
            # READONLY: the script wrote nothing on a demoted master, and its connection
            # is retired; once more, on a new connection (Sentinel names the new master).
            self._send(batch, parts, big, sha, resent=True)
            return
        if exc is not None:
            for *_, waiter in batch:
                _resolve(waiter, exc)
            return
        # Inlined (not _resolve): this loop runs for every message sent.
        full = 0
        for (_, _, _, channel, waiter), status in zip(batch, reply.result(), strict=True):
            if not isinstance(waiter, asyncio.Future):
                if status:
                    _tell(waiter, None)
                else:
                    full += 1
                    _tell(waiter, ChannelFull(channel))
                continue
            if waiter.done():
                continue
            if status:
                waiter.set_result(None)
            else:
                full += 1
                waiter.set_exception(ChannelFull(channel))
        if full:
            self._stats["channel_full"] += full

    # ---- large members: plain commands, capacity checked right after ---------------

    def _send_direct(self, item: _Pending, score: float) -> None:
        """Add a large member with MULTI/EXEC (cleanup, ZADD, ZCOUNT, EXPIRE), no Lua.

        EXEC runs atomically, so its ZCOUNT counts this member and every older one
        (lower score) still waiting: over capacity, the member is taken back (ZREM) and
        the sender gets ChannelFull; if a consumer popped it first, it was delivered
        (success). Newer members are not counted, so a burst of large sends is refused
        from the first one past capacity on, as the script would. The channel may hold
        more than its capacity for that moment, never for longer.
        """
        key, member, _, _, _ = item
        self._stats["direct_sends"] += 1
        pieces: list[Piece] = [
            _MULTI,
            pack(("ZREMRANGEBYSCORE", key, 0, int(score) - self._expiry)),
            b"*4\r\n$4\r\nZADD\r\n" + bulk(key) + bulk(repr(score)),
            *_member_pieces(member),
            # Messages no newer than this one (its own score included): what the script
            # would have counted before adding it, plus itself; later ones do not count.
            pack(("ZCOUNT", key, "-inf", repr(score))),
            pack(("EXPIRE", key, self._expiry)),
            _EXEC,
        ]
        # One write, six replies: OK, QUEUED x4 (discarded), then EXEC's results.
        reply = self._client.submit(pieces, replies=6)
        self._in_flight.add(reply)
        reply.add_done_callback(functools.partial(self._settle_direct, item, score))

    def _settle_direct(self, item: _Pending, score: float, reply: asyncio.Future[Any]) -> None:
        self._in_flight.discard(reply)
        key, member, capacity, _, waiter = item
        if reply.cancelled():
            _resolve(waiter, asyncio.CancelledError())
            return
        exc = reply.exception()
        if isinstance(exc, RedisCommandError) and str(exc).startswith("EXECABORT"):
            # A queued command was refused (MOVED/ASK on a cluster, READONLY after a
            # failover) and nothing ran: the send script path follows those itself.
            parts, big = self._encode([item], score)
            self._stats["script_calls"] += 1
            self._send([item], parts, big, sha=True)
            return
        results = reply.result() if exc is None else None
        if exc is None and not isinstance(results, list):
            exc = RedisUnavailable(f"unexpected EXEC reply {results!r}")
        if exc is None:
            assert isinstance(results, list)
            # An error reply of one command inside EXEC comes as an element of its array.
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            exc = reply_error(str(failed)) if failed is not None else None
        if exc is not None:
            _resolve(waiter, exc)
            return
        assert isinstance(results, list)
        if results[2] <= capacity:
            _resolve(waiter, None)
            return
        take_back = self._client.submit(pack_pieces(["ZREM", key, *_member_arg(member)]))
        self._in_flight.add(take_back)
        take_back.add_done_callback(functools.partial(self._taken_back, item))

    def _taken_back(self, item: _Pending, reply: asyncio.Future[Any]) -> None:
        self._in_flight.discard(reply)
        channel, waiter = item[3], item[4]
        if reply.cancelled() or reply.exception() is not None:
            # Unknown whether it stays: report the error (the caller may retry and
            # deliver twice, like any send whose outcome is unknown).
            _resolve(waiter, asyncio.CancelledError() if reply.cancelled() else reply.exception())
        elif reply.result():
            self._stats["channel_full"] += 1
            _resolve(waiter, ChannelFull(channel))
        else:
            _resolve(waiter, None)  # a consumer had popped it already: delivered

    async def aclose(self) -> None:
        """Wait for batches already in flight (their senders are waiting on them)."""
        if self._pending:
            self._flush()
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=5.0)
