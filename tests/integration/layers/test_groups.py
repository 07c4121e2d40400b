"""Groups: add, discard, at-most-once broadcast, full members counted."""

from __future__ import annotations

import asyncio

import pytest
import redis

from servicebus.layers import RedisChannelLayer

pytestmark = pytest.mark.redis


async def test_group_send_reaches_every_member(layer: RedisChannelLayer) -> None:
    local1 = await layer.new_channel()
    local2 = await layer.new_channel()
    for channel in (local1, local2, "plain.one"):
        await layer.group_add("prices", channel)
    await layer.group_send("prices", {"sku": "A1"})
    assert await asyncio.wait_for(layer.receive(local1), 5) == {"sku": "A1"}
    assert await asyncio.wait_for(layer.receive(local2), 5) == {"sku": "A1"}
    assert await layer.receive_many("plain.one", 10, timeout=1) == [{"sku": "A1"}]


async def test_group_discard(layer: RedisChannelLayer) -> None:
    await layer.group_add("g", "a")
    await layer.group_add("g", "b")
    await layer.group_discard("g", "a")
    await layer.group_discard("g", "never-added")
    await layer.group_send("g", {"n": 1})
    assert await layer.receive_many("a", 10, timeout=0.1) == []
    assert await layer.receive_many("b", 10, timeout=0.1) == [{"n": 1}]


async def test_group_send_to_empty_group_is_a_no_op(layer: RedisChannelLayer) -> None:
    await layer.group_add("someone", "x")  # connected, so a stray write would show
    client = redis.Redis.from_url(layer.hosts[0]["address"])
    try:
        keys_before = sorted(client.keys("*"))
        await layer.group_send("nobody", {"n": 1})
        assert sorted(client.keys("*")) == keys_before == [b"asgi:group:someone"]
    finally:
        client.close()
    assert layer.stats["script_calls"] == 0
    assert layer.stats["group_member_full"] == 0


async def test_full_member_is_dropped_and_counted(make_layer) -> None:
    layer = make_layer(channel_capacity={"full.*": 1})
    await layer.group_add("g", "full.x")
    await layer.group_add("g", "roomy")
    await layer.group_send("g", {"n": 1})
    await layer.group_send("g", {"n": 2})
    assert layer.stats["group_member_full"] == 1
    assert await layer.receive_many("full.x", 10, timeout=0.1) == [{"n": 1}]
    assert await layer.receive_many("roomy", 10, timeout=0.1) == [{"n": 1}, {"n": 2}]


async def test_group_members_expire(make_layer) -> None:
    layer = make_layer(group_expiry=1)
    await layer.group_add("g", "old")
    await layer.group_send("g", {"n": 0})
    # Positive control: before its expiry the member gets the broadcast.
    assert await layer.receive_many("old", 10, timeout=0.1) == [{"n": 0}]
    client = redis.Redis.from_url(layer.hosts[0]["address"])
    try:
        # The key stays (as when other members keep joining); only the member is stale.
        client.persist("asgi:group:g")
        await asyncio.sleep(2.1)
        await layer.group_add("g", "fresh")
        await layer.group_send("g", {"n": 1})
        assert await layer.receive_many("fresh", 10, timeout=0.5) == [{"n": 1}]
        assert await layer.receive_many("old", 10, timeout=0.1) == []
        assert client.zrange("asgi:group:g", 0, -1) == [b"fresh"]
    finally:
        client.close()
