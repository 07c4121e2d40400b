"""Pops whose receive was cancelled: never lost, handed to the next receive instead."""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from typing import Any

from .loops import LoopState
from .stats import LayerStats


class Leftovers:
    """Raw (member, score) pairs popped for a ``receive_many`` that was cancelled meanwhile.

    A cancelled receive never cancels its pop (Redis may already have popped): the pop
    is adopted by the next receive on the channel (same loop), or its pairs are kept
    here when it completes, counted in ``kept_after_cancel``.
    """

    def __init__(self, stats: LayerStats) -> None:
        self._stats = stats
        self._pairs: dict[str, deque[list[Any]]] = {}

    def take(self, channel: str, max_count: int) -> list[list[Any]]:
        """Up to ``max_count`` kept pairs of ``channel`` (oldest first)."""
        kept = self._pairs.get(channel)
        if not kept:
            return []
        return [kept.popleft() for _ in range(min(max_count, len(kept)))]

    async def wait(self, state: LoopState, channel: str, pop: asyncio.Future[Any]) -> Any:
        """The pop's reply; if the caller is cancelled, the pop is orphaned, not cancelled."""
        try:
            return await asyncio.shield(pop)
        except asyncio.CancelledError:
            if pop.done():
                self._keep(channel, pop)
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
            self._keep(channel, pop)

    def _keep(self, channel: str, pop: asyncio.Future[Any]) -> None:
        if pop.cancelled() or pop.exception() is not None:
            return
        reply = pop.result()
        if reply:
            self._pairs.setdefault(channel, deque()).extend(reply[1])
            self._stats["kept_after_cancel"] += len(reply[1])

    def clear(self) -> None:
        """Forget everything kept (flush)."""
        self._pairs.clear()
