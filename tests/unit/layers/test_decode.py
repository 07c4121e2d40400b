"""decode_member: every malformed member is counted by reason; a failing listener is contained."""

from __future__ import annotations

import os
from typing import Any

import msgpack
import pytest

from servicebus.layers import RedisChannelLayer
from servicebus.layers.stats import LayerStats


def _member(payload: Any) -> bytes:
    return os.urandom(12) + msgpack.packb(payload)


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (b"", "undecodable"),
        (os.urandom(12) + b"\xc1", "undecodable"),
        (_member({"a": 1}) + b"\x00", "undecodable"),  # trailing bytes
        (_member(5), "not_a_dict"),
        (_member(None), "not_a_dict"),
        (_member([{"a": 1}]), "not_a_dict"),
        (_member({"__asgi_channel__": 1}), "bad_channel"),
        (_member({"__asgi_channel__": None}), "bad_channel"),
        (_member({"__asgi_channel__": []}), "bad_channel"),
        (_member({"__asgi_channel__": ["a!b", b"c!d"]}), "bad_channel"),
    ],
)
def test_malformed_member_is_counted(member: bytes, reason: str) -> None:
    layer = RedisChannelLayer()
    seen: list[tuple[str, int]] = []
    layer.on_drop = lambda r, n: seen.append((r, n))
    assert layer.decode_member(member) is None
    assert seen == [(reason, 1)]
    assert layer.stats[reason] == 1


def test_valid_members_keep_their_tag() -> None:
    layer = RedisChannelLayer()
    assert layer.decode_member(layer.serialize({"a": 1})) == ({"a": 1}, None)
    tagged = _member({"__asgi_channel__": "x.y!z", "a": 2})
    assert layer.decode_member(tagged) == ({"a": 2}, "x.y!z")
    grouped = _member({"__asgi_channel__": ["x!1", "x!2"], "a": 3})
    assert layer.decode_member(grouped) == ({"a": 3}, ["x!1", "x!2"])


def test_a_failing_drop_listener_never_fails_the_layer() -> None:
    stats = LayerStats()

    def broken(reason: str, count: int) -> None:
        raise RuntimeError("listener bug")

    stats.on_drop = broken
    stats.drop("expired", 3)
    stats.drop("expired")
    assert stats["expired"] == 4
