"""Group messages as channels_redis builds them: one tagged message per channel key."""

from __future__ import annotations

from typing import Any, Protocol


class _Layer(Protocol):
    prefix: str

    def non_local_name(self, name: str) -> str: ...
    def consistent_hash(self, value: str | bytes) -> int: ...
    def get_capacity(self, channel: str) -> int: ...
    def serialize(self, message: dict[str, Any]) -> bytes: ...


def group_members(
    layer: _Layer, channels: list[str], message: dict[str, Any]
) -> dict[int, dict[str, tuple[bytes, int]]]:
    """shard -> channel key -> (member, capacity) for a group_send to ``channels``.

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
            tagged[key] = (layer.consistent_hash(name), copy, layer.get_capacity(channel))
    by_shard: dict[int, dict[str, tuple[bytes, int]]] = {}
    for key, (index, copy, capacity) in tagged.items():
        by_shard.setdefault(index, {})[key] = (layer.serialize(copy), capacity)
    return by_shard
