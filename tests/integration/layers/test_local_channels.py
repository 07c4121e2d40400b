"""Process-local ('!') channels: the drainer, per-channel buffers and their bounds."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from servicebus.layers import RedisChannelLayer

pytestmark = pytest.mark.redis


async def _wait_drained(layer: RedisChannelLayer, key: str) -> None:
    client = redis.Redis.from_url(layer.hosts[0]["address"])
    try:
        deadline = time.monotonic() + 10
        while client.zcard(key) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert client.zcard(key) == 0
    finally:
        client.close()


async def test_reply_channels_round_trip(layer: RedisChannelLayer) -> None:
    a = await layer.new_channel()
    b = await layer.new_channel("reply")
    await layer.send(a, {"to": "a"})
    await layer.send(b, {"to": "b"})
    assert await layer.receive(b) == {"to": "b"}
    assert await layer.receive(a) == {"to": "a"}


async def test_many_waiters_each_get_their_own_reply(layer: RedisChannelLayer) -> None:
    channels = [await layer.new_channel() for _ in range(50)]
    waiters = [asyncio.ensure_future(layer.receive(c)) for c in channels]
    await asyncio.sleep(0.05)
    await asyncio.gather(*(layer.send(c, {"c": c}) for c in reversed(channels)))
    results = await asyncio.wait_for(asyncio.gather(*waiters), 10)
    assert [r["c"] for r in results] == channels


async def test_unread_reply_channel_cannot_block_others(make_layer) -> None:
    # Stock channels_redis: every '!' channel of a process shares one capacity, so
    # 100 unread messages for A make every send to B fail with ChannelFull.
    layer = make_layer(capacity=100)
    a = await layer.new_channel()
    b = await layer.new_channel()
    warm = asyncio.ensure_future(layer.receive(b))  # starts this process's drainer
    await asyncio.sleep(0.05)
    key = layer.prefix + layer.non_local_name(a)
    for start in range(0, 250, 50):
        await asyncio.gather(*(layer.send(a, {"i": i}) for i in range(start, start + 50)))
        await _wait_drained(layer, key)
    await layer.send(b, {"for": "b"})
    assert await asyncio.wait_for(warm, 5) == {"for": "b"}
    # A's local buffer kept its newest `capacity` messages and counted the rest.
    assert layer.stats["local_buffer_full"] == 150
    assert (await layer.receive(a))["i"] == 150


async def test_unread_local_messages_expire(make_layer) -> None:
    layer = make_layer(expiry=1)
    a = await layer.new_channel()
    b = await layer.new_channel()
    reader = asyncio.ensure_future(layer.receive(b))
    await layer.send(a, {"never": "read"})
    await _wait_drained(layer, layer.prefix + layer.non_local_name(a))
    assert len(layer._buffers) == 1
    deadline = time.monotonic() + 8  # the drainer sweeps about once a second
    while len(layer._buffers) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert len(layer._buffers) == 0
    assert layer.stats["expired"] == 1
    reader.cancel()


async def test_cancelled_local_receive_keeps_the_message(layer: RedisChannelLayer) -> None:
    a = await layer.new_channel()
    reader = asyncio.ensure_future(layer.receive(a))
    await asyncio.sleep(0.05)
    reader.cancel()
    await layer.send(a, {"x": 1})
    assert await asyncio.wait_for(layer.receive(a), 5) == {"x": 1}


async def test_receive_on_foreign_local_channel_is_refused(layer: RedisChannelLayer) -> None:
    with pytest.raises(ValueError, match="new_channel"):
        await layer.receive("specific.someoneelse!abc")
    with pytest.raises(ValueError, match="new_channel"):
        await layer.receive_many("specific.x!y", 3)


async def test_receive_many_on_local_channel_takes_what_is_buffered(
    layer: RedisChannelLayer,
) -> None:
    a = await layer.new_channel()
    assert await layer.receive_many(a, 10, timeout=0.1) == []
    for i in range(5):
        await layer.send(a, {"i": i})
    got: list[dict[str, int]] = []
    for _ in range(50):
        got += await layer.receive_many(a, 3, timeout=1)
        if len(got) == 5:
            break
    assert [m["i"] for m in got] == [0, 1, 2, 3, 4]


async def test_close_unblocks_the_drainer_pop(make_layer) -> None:
    # With 5 s pops, close() returns at once only if the pop is unblocked server-side
    # (CLIENT UNBLOCK), which hands back anything it had already taken.
    layer = make_layer(block_timeout=5.0)
    reader = asyncio.ensure_future(layer.receive(await layer.new_channel()))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await layer.close()
    assert time.monotonic() - started < 3
    reader.cancel()


async def test_listen_local_hands_batches_to_the_callback(layer: RedisChannelLayer) -> None:
    channel = await layer.new_channel("listened")
    await layer.send(channel, {"i": 0})
    got: list[dict[str, int]] = []
    arrived = asyncio.Event()

    def callback(messages: list[dict[str, int]]) -> None:
        got.extend(messages)
        if len(got) == 11:
            arrived.set()

    # Starts the drainer itself; the message sent before is handed over too.
    listening = asyncio.ensure_future(layer.listen_local(channel, callback))
    await asyncio.gather(*(layer.send(channel, {"i": i}) for i in range(1, 11)))
    await asyncio.wait_for(arrived.wait(), 5)
    assert [m["i"] for m in got] == list(range(11))
    listening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await listening
    # No listener any more: messages are buffered for receive() again.
    await layer.send(channel, {"i": 11})
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"i": 11}
    assert got[-1] == {"i": 10}
