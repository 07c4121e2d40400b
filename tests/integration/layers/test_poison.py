"""Per-message isolation: a malformed member is counted and skipped, never its neighbours."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import msgpack
import pytest
import redis

from servicebus.layers import RedisChannelLayer

pytestmark = pytest.mark.redis


def _member(payload: Any) -> bytes:
    """A member as a hostile peer writes it: 12 random bytes + msgpack of anything."""
    return os.urandom(12) + msgpack.packb(payload)


def _zadd(layer: RedisChannelLayer, key: str, members: list[bytes]) -> None:
    client = redis.Redis.from_url(layer.hosts[0]["address"])
    try:
        now = time.time()
        client.zadd(key, {m: now + i * 1e-6 for i, m in enumerate(members)})
    finally:
        client.close()


async def _receive_all(layer: RedisChannelLayer, channel: str, batch: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while messages := await layer.receive_many(channel, batch, timeout=0.5):
        got.extend(messages)
    return got


async def test_one_int_does_not_cost_its_batch(make_layer) -> None:
    layer = make_layer(capacity=2000)
    members = [layer.serialize({"i": i}) for i in range(90)]
    members.insert(45, _member(7))
    _zadd(layer, "asgiwork", members)
    got = await _receive_all(layer, "work", 16)
    assert sorted(m["i"] for m in got) == list(range(90))
    assert layer.stats["not_a_dict"] == 1


async def test_fifty_ints_among_a_thousand(make_layer) -> None:
    layer = make_layer(capacity=2000)
    members = [layer.serialize({"i": i}) for i in range(1000)]
    for n in range(50):
        members.insert(n * 20, _member(n))
    _zadd(layer, "asgiwork", members)
    got = await _receive_all(layer, "work", 16)
    assert sorted(m["i"] for m in got) == list(range(1000))
    assert layer.stats["not_a_dict"] == 50


async def test_every_kind_of_poison_is_counted_by_reason(make_layer) -> None:
    layer = make_layer()
    drops: list[tuple[str, int]] = []
    layer.on_drop = lambda reason, n: drops.append((reason, n))
    poison = [
        b"short",  # shorter than the random prefix: nothing to decode
        os.urandom(12) + b"\xc1",  # 0xc1 is never valid msgpack
        _member([1, 2]),  # a list
        _member("text"),  # a string
        _member({"__asgi_channel__": 5, "x": 1}),  # a channel tag that is not a name
        _member({"__asgi_channel__": [None], "x": 2}),
    ]
    _zadd(layer, "asgiwork", [layer.serialize({"ok": 1}), *poison, layer.serialize({"ok": 2})])
    got = await _receive_all(layer, "work", 3)
    assert got == [{"ok": 1}, {"ok": 2}]
    assert (layer.stats["undecodable"], layer.stats["not_a_dict"], layer.stats["bad_channel"]) == (
        2,
        2,
        2,
    )
    assert sorted(drops) == sorted(
        [("undecodable", 1)] * 2 + [("not_a_dict", 1)] * 2 + [("bad_channel", 1)] * 2
    )


async def test_a_stock_group_tag_on_a_normal_channel_is_accepted(make_layer) -> None:
    layer = make_layer()
    _zadd(layer, "asgiwork", [_member({"__asgi_channel__": ["work"], "g": 1})])
    assert await layer.receive_many("work", 5, timeout=1) == [{"g": 1}]


@pytest.mark.parametrize("tag", [7, None, [1, 2], ["ok", 3], {"a": 1}, []])
async def test_poison_reply_does_not_deafen_the_drainer(make_layer, tag: Any) -> None:
    layer = make_layer()
    channel = await layer.new_channel("reply")
    got: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    def callback(messages: list[dict[str, Any]]) -> None:
        got.extend(messages)
        arrived.set()

    listening = asyncio.ensure_future(layer.listen_local(channel, callback))
    try:
        await layer.send(channel, {"warm": 1})  # the drainer runs
        await asyncio.wait_for(arrived.wait(), 5)
        arrived.clear()
        key = layer.prefix + layer.non_local_name(channel)
        _zadd(layer, key, [_member({"__asgi_channel__": tag, "x": 1}), _member(3)])
        await layer.send(channel, {"valid": 1})
        await asyncio.wait_for(arrived.wait(), 5)
        assert got == [{"warm": 1}, {"valid": 1}]
        assert layer.stats["bad_channel"] == 1
        assert layer.stats["not_a_dict"] == 1
    finally:
        listening.cancel()


async def test_drainer_restarts_after_an_unexpected_error(make_layer, monkeypatch) -> None:
    from servicebus.layers import drain

    layer = make_layer()
    channel = await layer.new_channel()
    original = drain.Drainer._dispatch
    failures = [RuntimeError("injected fault")]

    def faulty(self: drain.Drainer, pairs: list[Any]) -> None:
        if failures:
            raise failures.pop()
        original(self, pairs)

    monkeypatch.setattr(drain.Drainer, "_dispatch", faulty)
    await layer.send(channel, {"lost": "to the fault"})
    receiver = asyncio.ensure_future(layer.receive(channel))
    deadline = time.monotonic() + 5
    while layer.stats["drainer_restarts"] == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert layer.stats["drainer_restarts"] == 1
    await layer.send(channel, {"after": "restart"})
    assert await asyncio.wait_for(receiver, 5) == {"after": "restart"}
