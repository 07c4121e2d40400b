"""Send and receive on normal channels: capacity, coalescing, batches, expiry, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from channels.exceptions import ChannelFull

from servicebus.layers import RedisChannelLayer, RedisCommandError

pytestmark = pytest.mark.redis


async def test_send_then_receive(layer: RedisChannelLayer) -> None:
    await layer.send("orders.request", {"n": 1, "body": b"\x00bytes"})
    assert await layer.receive("orders.request") == {"n": 1, "body": b"\x00bytes"}


async def test_full_channel_raises_channel_full(make_layer) -> None:
    layer = make_layer(capacity=3)
    for i in range(3):
        await layer.send("small", {"i": i})
    with pytest.raises(ChannelFull):
        await layer.send("small", {"i": 3})
    assert layer.stats["channel_full"] == 1


async def test_channel_capacity_patterns_apply(make_layer) -> None:
    layer = make_layer(capacity=100, channel_capacity={"tiny.*": 1})
    await layer.send("tiny.one", {})
    with pytest.raises(ChannelFull):
        await layer.send("tiny.one", {})
    await layer.send("other", {})


async def test_capacity_check_is_atomic_under_concurrency(make_layer) -> None:
    layer = make_layer(capacity=100, max_batch=16)
    await layer.send("warm", {})  # connect and check the version first
    results = await asyncio.gather(
        *(layer.send("cap", {"i": i}) for i in range(250)), return_exceptions=True
    )
    accepted = [r for r in results if r is None]
    refused = [r for r in results if isinstance(r, ChannelFull)]
    assert (len(accepted), len(refused)) == (100, 150)
    client = redis.Redis.from_url(layer.hosts[0]["address"])
    assert client.zcard("asgicap") == 100
    client.close()


async def test_concurrent_sends_are_coalesced(make_layer) -> None:
    layer = make_layer(capacity=1000, max_batch=64)
    await layer.send("warm", {})
    before = layer.stats["script_calls"]
    await asyncio.gather(*(layer.send("co", {"i": i}) for i in range(200)))
    # 200 sends of one tick -> ceil(200 / 64) = 4 script calls, not 200.
    assert layer.stats["script_calls"] - before == 4
    got = await layer.receive_many("co", 500, timeout=1)
    assert sorted(m["i"] for m in got) == list(range(200))


async def test_one_script_call_fills_a_channel_to_capacity_in_order(make_layer) -> None:
    # One call of 2,500 members to one key: counted once, added in ZADD chunks, the
    # members past capacity refused; the accepted ones pop in send order.
    layer = make_layer(capacity=2_400, max_batch=3_000, channel_capacity={"mixed": 3})
    await layer.send("warm", {})
    before = layer.stats["script_calls"]
    results = await asyncio.gather(
        *(layer.send("big", {"i": i}) for i in range(2_500)),
        *(layer.send("mixed", {"i": i}) for i in range(5)),
        return_exceptions=True,
    )
    assert layer.stats["script_calls"] - before == 1
    assert results[:2_400] == [None] * 2_400
    assert all(isinstance(r, ChannelFull) for r in results[2_400:2_500])
    assert results[2_500:] == [None, None, None, results[2_503], results[2_504]]
    assert isinstance(results[2_503], ChannelFull)
    got = await layer.receive_many("big", 3_000, timeout=1)
    assert [m["i"] for m in got] == list(range(2_400))
    assert [m["i"] for m in await layer.receive_many("mixed", 10, timeout=1)] == [0, 1, 2]


async def test_large_messages_go_without_lua_in_order_and_within_capacity(make_layer) -> None:
    layer = make_layer(capacity=3)
    await layer.send("warm", {})
    bodies = [bytes([i]) * 300_000 for i in range(5)]
    results = await asyncio.gather(
        *(layer.send("big", {"i": i, "body": body}) for i, body in enumerate(bodies)),
        return_exceptions=True,
    )
    assert results[:3] == [None, None, None]
    assert all(isinstance(r, ChannelFull) for r in results[3:])
    assert layer.stats["direct_sends"] == 5
    assert layer.stats["channel_full"] == 2
    client = redis.Redis.from_url(layer.hosts[0]["address"])
    assert client.zcard("asgibig") == 3  # the refused ones were taken back
    assert client.ttl("asgibig") > 0
    client.close()
    got = await layer.receive_many("big", 10, timeout=1)
    assert [(m["i"], m["body"]) for m in got] == [(i, bodies[i]) for i in range(3)]


async def test_a_large_message_popped_before_its_check_counts_as_delivered(make_layer) -> None:
    # Over capacity by one for a moment: whichever member a consumer pops first is
    # delivered; the sender of a member still there gets ChannelFull. Never both.
    layer = make_layer(capacity=1)
    await layer.send("warm", {})
    small = layer.send("mixed", {"i": 0})
    big = layer.send("mixed", {"i": 1, "body": b"x" * 100_000})
    results = await asyncio.gather(small, big, return_exceptions=True)
    got = await layer.receive_many("mixed", 10, timeout=0.5)
    delivered = {m["i"] for m in got}
    refused = {i for i, r in enumerate(results) if isinstance(r, ChannelFull)}
    assert delivered == {i for i, r in enumerate(results) if r is None}
    assert delivered.isdisjoint(refused) and delivered | refused == {0, 1}


async def test_receive_many_pops_a_batch(layer: RedisChannelLayer) -> None:
    for i in range(10):
        await layer.send("batch", {"i": i})
    first = await layer.receive_many("batch", 4)
    rest = await layer.receive_many("batch", 100)
    assert [m["i"] for m in first] == [0, 1, 2, 3]
    assert sorted(m["i"] for m in rest) == list(range(4, 10))


async def test_receive_many_times_out_empty(layer: RedisChannelLayer) -> None:
    started = time.monotonic()
    assert await layer.receive_many("nothing", 10, timeout=0.3) == []
    assert await layer.receive_many("nothing", 10, timeout=0) == []
    assert time.monotonic() - started < 5


async def test_receive_many_waits_for_a_later_send(layer: RedisChannelLayer) -> None:
    waiter = asyncio.ensure_future(layer.receive_many("later", 10, timeout=10))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await layer.send("later", {"ok": True})
    assert await waiter == [{"ok": True}]


async def test_idle_receive_outlives_small_socket_timeout(make_layer, redis_flushed) -> None:
    # channels_redis + redis-py 8 crash here: socket timeout == blocking-pop timeout.
    # A 0.3 s socket timeout and 0.25 s pops: an idle receive spans several of each.
    layer = make_layer(
        hosts=[{"address": redis_flushed, "socket_timeout": 0.3}], block_timeout=0.25
    )
    receiver = asyncio.ensure_future(layer.receive("idle"))
    await asyncio.sleep(1.6)
    assert not receiver.done()
    await layer.send("idle", {"late": 1})
    assert await asyncio.wait_for(receiver, 5) == {"late": 1}


async def test_cancelled_receive_loses_nothing(make_layer) -> None:
    layer = make_layer(block_timeout=0.5)
    for _ in range(20):
        receiver = asyncio.ensure_future(layer.receive_many("cancel", 10))
        await asyncio.sleep(0)
        await layer.send("cancel", {"n": 1})
        receiver.cancel()
        try:
            got = await receiver
        except asyncio.CancelledError:
            got = []
        if not got:
            # Whatever the cancelled pop took is handed to the next call.
            got = await layer.receive_many("cancel", 10, timeout=2)
        assert got == [{"n": 1}]


async def test_old_messages_expire(make_layer) -> None:
    layer = make_layer(expiry=1, capacity=2)
    await layer.send("exp", {"old": 1})
    await layer.send("exp", {"old": 2})
    with pytest.raises(ChannelFull):
        await layer.send("exp", {"new": 0})
    await asyncio.sleep(2.1)
    # The send script drops expired messages before checking capacity.
    await layer.send("exp", {"new": 1})
    assert await layer.receive_many("exp", 10, timeout=1) == [{"new": 1}]


async def test_expired_messages_are_not_delivered(make_layer) -> None:
    layer = make_layer(expiry=10)
    # A message left over from 20 s ago in a key kept alive by other sends.
    await layer.send("stale", {"new": 1})
    client = redis.Redis.from_url(layer.hosts[0]["address"])
    client.zadd("asgistale", {layer.serialize({"old": 1}): time.time() - 20})
    client.close()
    assert await layer.receive_many("stale", 10, timeout=0.1) == [{"new": 1}]
    assert layer.stats["expired"] == 1


async def test_encrypted_messages_round_trip(make_layer) -> None:
    pytest.importorskip("cryptography")
    layer = make_layer(symmetric_encryption_keys=["s3cret"])
    await layer.send("enc", {"secret": "value"})
    ch = await layer.new_channel()
    await layer.send(ch, {"secret": "reply"})
    raw = redis.Redis.from_url(layer.hosts[0]["address"]).zrange("asgienc", 0, -1)
    assert b"value" not in raw[0]
    assert await layer.receive("enc") == {"secret": "value"}
    assert await layer.receive(ch) == {"secret": "reply"}
    other = make_layer(symmetric_encryption_keys=["wrong"])
    await layer.send("enc", {"secret": "x"})
    assert await other.receive_many("enc", 1, timeout=0.2) == []
    assert other.stats["undecodable"] == 1


async def test_flush_deletes_messages_and_groups(layer: RedisChannelLayer) -> None:
    await layer.send("f", {})
    await layer.group_add("grp", "f")
    await layer.flush()
    assert await layer.receive_many("f", 10, timeout=0.1) == []
    client = redis.Redis.from_url(layer.hosts[0]["address"])
    assert client.keys("asgi*") == []
    client.close()


async def test_close_then_reuse(layer: RedisChannelLayer) -> None:
    ch = await layer.new_channel()
    await layer.send(ch, {"a": 1})
    assert await layer.receive(ch) == {"a": 1}
    await layer.close()
    assert layer._loops == {}
    await layer.send("again", {"b": 2})
    assert await layer.receive("again") == {"b": 2}


async def test_sends_written_in_the_flush_tick_survive_a_script_flush(make_layer) -> None:
    layer = make_layer(capacity=1000)
    # Once a connection is held, a batch is written inside the flush callback and a
    # task only reads its statuses; NOSCRIPT there still falls back to EVAL.
    await layer.send("held", {"i": -1})
    client = redis.Redis.from_url(layer.hosts[0]["address"])
    client.script_flush()
    client.close()
    await asyncio.gather(*(layer.send("held", {"i": i}) for i in range(150)))
    got = await layer.receive_many("held", 200)
    assert [m["i"] for m in got] == list(range(-1, 150))
    assert layer.stats["script_calls"] == 1 + 3  # max_batch 64: 64 + 64 + 22


async def test_concurrent_pops_past_the_connection_limit_wait(make_layer) -> None:
    layer = make_layer(max_blocking_connections=2, block_timeout=0.2)
    receivers = [
        asyncio.ensure_future(layer.receive_many(f"limited{i}", 5, timeout=10)) for i in range(5)
    ]
    await asyncio.sleep(0.1)
    for i in range(5):
        await layer.send(f"limited{i}", {"i": i})
    results = await asyncio.wait_for(asyncio.gather(*receivers), 10)
    assert results == [[{"i": i}] for i in range(5)]


async def test_raw_commands_and_pipelines(layer: RedisChannelLayer) -> None:
    assert await layer.command("k", "SET", "k", "v") == b"OK"
    assert await layer.pipeline("k", [["GET", "k"], ["SET", "k", "w", "NX"]]) == [b"v", None]
    with pytest.raises(RedisCommandError):
        await layer.command("k", "LPUSH", "k", "x")
