"""``RedisTransport``: the core over servicebus's own Redis layer, with its batched API."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from servicebus.errors import BadRequest, ServiceBusError
from servicebus.layers import RedisChannelLayer

from .base import Delivered, DropListener, Sent, Transport, map_error, report_sent

# SET NX PXAT per key, 1 where the key was new: one command for a whole popped batch.
CLAIM_SCRIPT = """
local fresh = {}
for i, key in ipairs(KEYS) do
  fresh[i] = redis.call('SET', key, '1', 'NX', 'PXAT', ARGV[i]) and 1 or 0
end
return fresh
"""


def _ignore(error: BaseException | None) -> None:
    """Nobody waits for this send's outcome (a failure is the layer's to count)."""


class RedisTransport(Transport):
    """Coalesced sends, batched pops and drained reply channels of ``RedisChannelLayer``."""

    def __init__(self, layer: RedisChannelLayer, on_drop: DropListener | None = None) -> None:
        self.layer = layer
        if on_drop is not None:
            # The layer reports every message it drops (expired, undecodable, ...).
            layer.on_drop = on_drop

    def send_nowait(self, channel: str, message: dict[str, Any], sent: Sent | None = None) -> None:
        """Queue ``message``; sends of one loop tick go to Redis in one script call.

        ``sent`` is called as soon as Redis answered, from the layer's reply reading: no
        future and no loop callback per message.
        """
        callback = _ignore if sent is None else functools.partial(report_sent, channel, sent)
        try:
            self.layer.send_nowait(channel, message, callback)
        except (TypeError, AssertionError, ValueError) as exc:
            # The layer's checks of the name and message (stock exception types).
            raise BadRequest(f"cannot send to {channel!r}: {exc}") from None
        except Exception as exc:
            raise map_error(exc, channel) from exc

    async def receive(
        self, channel: str, max_count: int, timeout: float | None = None
    ) -> list[Any]:
        """One batched atomic pop of up to ``max_count`` messages."""
        try:
            return await self.layer.receive_many(channel, max_count, timeout=timeout)
        except ServiceBusError:
            raise
        except Exception as exc:
            raise map_error(exc, channel) from exc

    async def listen(self, channel: str, deliver: Delivered) -> None:
        """The layer's drainer calls ``deliver`` with each batch: no task wake per batch."""
        try:
            await self.layer.listen_local(channel, deliver)
        except Exception as exc:
            raise map_error(exc, channel) from exc

    async def check(self) -> None:
        """Connect to every shard, authenticate and check the server version."""
        try:
            await self.layer.check()
        except Exception as exc:
            raise map_error(exc) from exc

    async def claim(self, keys_and_expiry: Sequence[tuple[str, float]]) -> list[bool]:
        """SET key NX PXAT for every key: one script call on the shard of the first key.

        Callers give the keys of one batch a common hash tag (``{channel}``), so on a
        cluster they share a slot too.
        """
        if not keys_and_expiry:
            return []
        prefix = self.layer.prefix
        keys = [prefix + key for key, _ in keys_and_expiry]
        expiries = [max(1, int(expiry * 1000)) for _, expiry in keys_and_expiry]
        try:
            flags = await self.layer.command(
                keys[0], "EVAL", CLAIM_SCRIPT, len(keys), *keys, *expiries
            )
        except Exception as exc:
            raise map_error(exc) from exc
        return [bool(flag) for flag in flags]

    async def close(self) -> None:
        """Flush this loop's queued sends and close its connections."""
        try:
            await self.layer.close()
        except Exception as exc:
            raise map_error(exc) from exc
