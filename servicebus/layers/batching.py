"""Send coalescing: all sends of one event-loop tick to one shard go in one script call."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from channels.exceptions import ChannelFull

from .errors import RedisNoScriptError
from .pool import CommandClient
from .scripts import SEND_MANY
from .stats import LayerStats

# (key, member, capacity, channel, future of the sender)
_Pending = tuple[str, bytes, int, str, "asyncio.Future[None]"]

# 1 us: above a double's resolution for epoch seconds (~0.24 us), far below clock skew.
_SCORE_STEP = 1e-6


class SendCoalescer:
    """Collects sends for one (event loop, shard) and flushes them once per loop tick.

    Each flush writes SEND_MANY with up to ``max_batch`` messages per call, pipelined on
    the shard's command connection, so bursts overlap. A sender's future resolves to
    None (added) or fails with ChannelFull or the Redis error; no task per batch.
    """

    def __init__(
        self,
        client: CommandClient,
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

    def submit(self, key: str, member: bytes, capacity: int, channel: str) -> asyncio.Future[None]:
        """Queue one message; the future resolves when Redis took it (or fails)."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._pending.append((key, member, capacity, channel, future))
        if not self._scheduled:
            # call_soon runs after every callback already queued for this tick, so
            # sends from all tasks woken in the same tick end up in one batch.
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        if not pending:
            return
        # Scores (send times) strictly increase in submit order, so a channel stays
        # FIFO even within a batch and across the pipelined calls of one burst.
        score = max(time.time(), self._last_score + _SCORE_STEP)
        self._last_score = score + (len(pending) - 1) * _SCORE_STEP
        size = self._max_batch
        for start in range(0, len(pending), size):
            batch = pending[start : start + size]
            keys: list[str] = []
            args: list[Any] = [score + start * _SCORE_STEP, self._expiry]
            for i, (key, member, capacity, _, _) in enumerate(batch, start):
                keys.append(key)
                args += (member, capacity, score + i * _SCORE_STEP)
            self._stats["script_calls"] += 1
            self._send(batch, keys, args, SEND_MANY.evalsha(keys, args), retry=True)

    def _send(
        self, batch: list[_Pending], keys: list[str], args: list[Any], command: Any, retry: bool
    ) -> None:
        reply = self._client.submit(command)
        self._in_flight.add(reply)
        reply.add_done_callback(functools.partial(self._settle, batch, keys, args, retry))

    def _settle(
        self,
        batch: list[_Pending],
        keys: list[str],
        args: list[Any],
        retry: bool,
        reply: asyncio.Future[Any],
    ) -> None:
        self._in_flight.discard(reply)
        if reply.cancelled():
            for *_, future in batch:
                future.cancel()
            return
        exc = reply.exception()
        if isinstance(exc, RedisNoScriptError) and retry:
            # Redis restarted or its scripts were flushed: EVAL runs and caches it again.
            self._send(batch, keys, args, SEND_MANY.eval(keys, args), retry=False)
            return
        if exc is not None:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        full = 0
        for (_, _, _, channel, future), status in zip(batch, reply.result(), strict=True):
            if future.done():
                continue
            if status:
                future.set_result(None)
            else:
                full += 1
                future.set_exception(ChannelFull(channel))
        if full:
            self._stats["channel_full"] += full

    async def aclose(self) -> None:
        """Wait for batches already in flight (their senders are waiting on them)."""
        if self._pending:
            self._flush()
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=5.0)
