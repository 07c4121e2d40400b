"""Group messages as channels_redis builds them (one tagged message per channel key), sent
with one script call per shard or cluster slot."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from .pool import Commands, gather_all
from .scripts import SEND_MANY


class _Layer(Protocol):
    prefix: str
    expiry: float

    def non_local_name(self, name: str) -> str: ...
    def get_capacity(self, channel: str) -> int: ...
    def serialize(self, message: dict[str, Any]) -> bytes: ...


def group_members(
    layer: _Layer,
    route: Callable[[str, str], int],
    channels: list[str],
    message: dict[str, Any],
) -> dict[int, dict[str, tuple[bytes, int]]]:
    """route -> channel key -> (member, capacity) for a group_send to ``channels``.

    ``route(name, key)`` is the shard (or cluster slot) of a channel: one send script
    per route, since a script may only touch keys of one slot.

    Every key gets one message whose ``__asgi_channel__`` lists the group's channels on
    that key (all '!' channels of one process share a key), exactly as stock does, so
    stock receivers unpack it.
    """
    tagged: dict[str, tuple[int, dict[str, Any], int]] = {}
    for channel in channels:
        name = layer.non_local_name(channel) if "!" in channel else channel
        key = layer.prefix + name
        if key in tagged:
            tagged[key][1]["__asgi_channel__"].append(channel)
        else:
            copy = {**message, "__asgi_channel__": [channel]}
            tagged[key] = (route(name, key), copy, layer.get_capacity(channel))
    by_shard: dict[int, dict[str, tuple[bytes, int]]] = {}
    for key, (index, copy, capacity) in tagged.items():
        by_shard.setdefault(index, {})[key] = (layer.serialize(copy), capacity)
    return by_shard


async def send_to_channels(
    layer: _Layer,
    route: Callable[[str, str], int],
    commands: Callable[[int], Commands],
    channels: list[str],
    message: dict[str, Any],
) -> int:
    """Send ``message`` to ``channels``: one atomic SEND_MANY per route, all concurrently.

    Returns how many channel keys were full (their message was dropped); a Redis error
    is raised after every call has settled.
    """
    now = time.time()
    calls = []
    for index, keyed in group_members(layer, route, channels, message).items():
        args: list[Any] = [now, int(layer.expiry)]
        for member, capacity in keyed.values():
            args += (member, capacity, now)
        calls.append(SEND_MANY(commands(index), list(keyed), args))
    dropped = 0
    for outcome in await gather_all(calls):
        dropped += outcome.count(0)
    return dropped
