"""``LayerTransport``: the core over any channels layer, through the standard API only.

For channels' ``InMemoryChannelLayer`` (tests, one-process setups) and the stock
``channels_redis`` layer (a mixed deployment): one message per receive, no batching.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from servicebus.errors import BadRequest

from .base import Delivered, Sent, Transport, map_error


class LayerTransport(Transport):
    """Adapter over a channels layer's ``send``/``receive``/``new_channel``."""

    # A cancelled receive stays pending here and is adopted by the next one.
    interruptible_receive = True

    def __init__(self, layer: Any, closer: Callable[[], Awaitable[None]] | None = None) -> None:
        self.layer = layer
        # The layer API has no standard close: get_transport passes the one this layer has.
        self._closer = closer
        # A receive that outlived its caller's timeout is kept for the next receive on that
        # channel instead of being cancelled: a stock layer may lose a message popped by a
        # receive cancelled at the wrong moment.
        self._pending: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[Any]] = {}
        # Claimed keys and their expiry (unix time): replay protection within one process.
        self._claims: dict[str, float] = {}
        self._claim_expiry: list[tuple[float, str]] = []
        # Sends started by send_nowait and not finished: close() waits for them.
        self._sending: set[asyncio.Future[None]] = set()

    def send_nowait(self, channel: str, message: dict[str, Any], sent: Sent | None = None) -> None:
        """Start ``layer.send`` in a task; ``sent`` gets its mapped outcome."""
        task = asyncio.ensure_future(self._send(channel, message))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        if sent is not None:
            task.add_done_callback(functools.partial(self.settle, channel, sent))

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """``layer.send`` with its errors mapped."""
        await self._send(channel, message)

    async def _send(self, channel: str, message: dict[str, Any]) -> None:
        try:
            await self.layer.send(channel, message)
        except (TypeError, AssertionError) as exc:
            # Stock layers check names and messages with TypeError/assert.
            raise BadRequest(f"cannot send to {channel!r}: {exc}") from None
        except Exception as exc:
            raise map_error(exc, channel) from exc

    async def receive(
        self, channel: str, max_count: int, timeout: float | None = None
    ) -> list[Any]:
        """One message (a stock layer has no batched receive); ``[]`` after ``timeout``."""
        loop = asyncio.get_running_loop()
        key = (loop, channel)
        future = self._pending.pop(key, None)
        if future is None:
            future = asyncio.ensure_future(self.layer.receive(channel))
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
        except asyncio.CancelledError:
            self._pending[key] = future
            raise
        if not done:
            self._pending[key] = future
            return []
        try:
            return [future.result()]
        except Exception as exc:
            raise map_error(exc, channel) from exc

    async def listen(self, channel: str, deliver: Delivered) -> None:
        """Receive one reply at a time and hand it to ``deliver``."""
        while True:
            try:
                message = await self.layer.receive(channel)
            except Exception as exc:
                raise map_error(exc, channel) from exc
            deliver([message])

    async def check(self) -> None:
        """Nothing to check through the standard API: the first send or receive tells."""

    async def claim(self, keys_and_expiry: Sequence[tuple[str, float]]) -> list[bool]:
        """Set-if-absent in this process's memory (an in-process layer has one process)."""
        now = time.time()
        heap = self._claim_expiry
        while heap and heap[0][0] <= now:
            expiry, key = heapq.heappop(heap)
            if self._claims.get(key) == expiry:
                del self._claims[key]
        results = []
        for key, expiry in keys_and_expiry:
            held = self._claims.get(key)
            if (held is not None and held > now) or expiry <= now:
                results.append(False)
                continue
            self._claims[key] = expiry
            heapq.heappush(heap, (expiry, key))
            results.append(True)
        return results

    async def close(self) -> None:
        """Finish this loop's sends, cancel its pending receives, then close the layer."""
        loop = asyncio.get_running_loop()
        sending = [task for task in self._sending if task.get_loop() is loop]
        if sending:
            await asyncio.wait(sending, timeout=5.0)
        for key in [k for k in self._pending if k[0] is loop]:
            self._pending.pop(key).cancel()
        if self._closer is not None:
            try:
                await self._closer()
            except Exception as exc:
                raise map_error(exc) from exc
