"""Send coalescing: all sends of one event-loop tick to one shard go in one script call."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from .scripts import SEND_MANY
from .wire import Lane, lane_of, write_now

_Pending = tuple[str, bytes, int, "asyncio.Future[int]"]

# 1 us: above a double's resolution for epoch seconds (~0.24 us), far below clock skew.
_SCORE_STEP = 1e-6


class SendCoalescer:
    """Collects sends for one (event loop, shard) and flushes them once per loop tick.

    Each flush runs SEND_MANY with up to ``max_batch`` messages; a bigger burst is
    split into several calls that run concurrently, so bursts can overlap.
    """

    def __init__(
        self,
        client: Redis,
        loop: asyncio.AbstractEventLoop,
        *,
        expiry: int,
        max_batch: int,
        stats: dict[str, int],
    ) -> None:
        self._client = client
        self._loop = loop
        self._expiry = expiry
        self._max_batch = max_batch
        self._stats = stats
        self._pending: list[_Pending] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_score = 0.0

    def submit(self, key: str, member: bytes, capacity: int) -> asyncio.Future[int]:
        """Queue one message; the future resolves to 1 (added) or 0 (channel full)."""
        future: asyncio.Future[int] = self._loop.create_future()
        self._pending.append((key, member, capacity, future))
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
        # FIFO even within a batch and across the concurrent calls of one burst.
        score = max(time.time(), self._last_score + _SCORE_STEP)
        scores = [score + i * _SCORE_STEP for i in range(len(pending))]
        self._last_score = scores[-1]
        size = self._max_batch
        lane = lane_of(self._client.connection_pool)
        for start in range(0, len(pending), size):
            end = start + size
            batch = pending[start:end]
            keys, args = self._command(batch, scores[start:end])
            self._stats["script_calls"] += 1
            conn = lane.take_ready()
            if conn is not None and write_now(conn, SEND_MANY.evalsha_command(keys, args)):
                # Written in this tick on a held connection (one batch in flight on
                # it, so replies cannot cross); the task only reads the statuses.
                coro = self._run(batch, keys, args, lane, conn)
            else:
                coro = self._run(batch, keys, args)
            task = self._loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _command(self, batch: list[_Pending], scores: list[float]) -> tuple[list[str], list[Any]]:
        keys: list[str] = []
        args: list[Any] = [scores[0], self._expiry]
        for (key, member, capacity, _), score in zip(batch, scores, strict=True):
            keys.append(key)
            args.append(member)
            args.append(capacity)
            args.append(score)
        return keys, args

    async def _run(
        self,
        batch: list[_Pending],
        keys: list[str],
        args: list[Any],
        lane: Lane | None = None,
        written: Any = None,
    ) -> None:
        try:
            if written is None:
                statuses = await SEND_MANY(self._client, keys, args)
            else:
                assert lane is not None
                try:
                    statuses = await lane.call_written(written)
                except NoScriptError:
                    statuses = await SEND_MANY.eval(self._client, keys, args)
        except BaseException as exc:
            for *_, future in batch:
                if not future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, future), status in zip(batch, statuses, strict=True):
            if not future.done():
                future.set_result(status)

    async def aclose(self) -> None:
        """Wait for batches already in flight (their senders are waiting on them)."""
        if self._pending:
            self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
