"""The layer on a real Redis Cluster (3 masters + 3 replicas): every channel kind."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.exceptions import ChannelFull

from servicebus.layers import RedisChannelLayer, RedisConfigError
from servicebus.layers.cluster import key_slot
from tests.support.consumers import check_each_delivered_once, share_among_consumers
from tests.support.layers import LayerFactory
from tests.support.redis_cluster import RedisCluster

pytestmark = pytest.mark.redis


def _keys_per_master(cluster: RedisCluster) -> dict[int, int]:
    counts = {}
    for port in cluster.masters():
        with cluster.client(port) as client:
            counts[port] = int(client.dbsize())
    return counts


def test_key_slot_agrees_with_the_server(redis_cluster: RedisCluster) -> None:
    keys = ["", "a", "asgisvc.request", "asgispecific.abc!", "asgi:group:g", "{x}y", "a{}b"]
    keys += ["foo{bar}{zap}", "foo{{bar}}z", "x{", "}{a}", "é{ü}"]
    with redis_cluster.client(redis_cluster.masters()[0]) as client:
        for key in keys:
            assert key_slot(key) == int(client.execute_command("CLUSTER", "KEYSLOT", key)), key


async def test_every_channel_kind_across_masters(
    cluster_layer: LayerFactory, cluster_flushed: RedisCluster
) -> None:
    layers = [cluster_layer() for _ in range(3)]  # three "processes"
    layer = layers[0]
    await layer.check()
    normal = [f"svc{i}.request" for i in range(30)]
    masters = {cluster_flushed.master_of("asgi" + name) for name in normal}
    assert len(masters) == 3, "the channel keys should spread over every master"
    # Reply channels: each layer's '!' key lives on the slot of its own name.
    local = [await each.new_channel("reply") for each in layers for _ in range(4)]

    for channel in normal + local:
        await layer.send(channel, {"to": channel})
    assert all(count > 0 for count in _keys_per_master(cluster_flushed).values())
    for channel in normal:
        assert await asyncio.wait_for(layer.receive(channel), 5) == {"to": channel}
    for owner, channel in zip([e for e in layers for _ in range(4)], local, strict=True):
        assert await asyncio.wait_for(owner.receive(channel), 5) == {"to": channel}

    # A group whose members sit on different slots (and masters): one send per slot.
    for channel in local:
        await layer.group_add("everyone", channel)
    for name in normal[:6]:
        await layer.group_add("everyone", name)
    await layer.group_send("everyone", {"hello": "all"})
    for owner, channel in zip([e for e in layers for _ in range(4)], local, strict=True):
        assert await asyncio.wait_for(owner.receive(channel), 5) == {"hello": "all"}
    for name in normal[:6]:
        assert await asyncio.wait_for(layer.receive(name), 5) == {"hello": "all"}
    await layer.group_discard("everyone", local[0])
    await layer.group_send("everyone", {"again": 1})
    assert await asyncio.wait_for(layers[0].receive(local[1]), 5) == {"again": 1}
    assert await layers[0].receive_many(local[0], 1, timeout=0.3) == []

    # Raw commands and pipelines: each command on the master of its own key.
    keys = [f"claim:{i}" for i in range(12)]
    assert len({cluster_flushed.master_of(k) for k in keys}) > 1
    sets = [["SET", k, i, "NX", "PX", 60000] for i, k in enumerate(keys)]
    replies = await layer.pipeline(keys[0], sets)
    assert replies == [b"OK"] * 12
    assert await layer.pipeline(keys[0], [["GET", k] for k in keys]) == [
        str(i).encode() for i in range(12)
    ]
    assert await layer.command(keys[5], "GET", keys[5]) == b"5"

    # flush empties every master.
    await layer.pipeline(keys[0], [["DEL", k] for k in keys])
    await layer.send(normal[0], {"left": "over"})
    await layer.flush()
    assert sum(_keys_per_master(cluster_flushed).values()) == 0


async def test_capacity_is_atomic_per_channel(cluster_layer: LayerFactory) -> None:
    layer = cluster_layer(capacity=10, channel_capacity={"small.*": 3})
    for i in range(3):
        await layer.send("small.q", {"i": i})
    with pytest.raises(ChannelFull):
        await layer.send("small.q", {"i": 3})
    # 60 concurrent sends to a capacity-10 channel from two layers: exactly 10 get in.
    other = cluster_layer(capacity=10)
    outcomes = await asyncio.gather(
        *(each.send("busy.q", {"i": i}) for i in range(30) for each in (layer, other)),
        return_exceptions=True,
    )
    assert sum(o is None for o in outcomes) == 10
    assert all(isinstance(o, ChannelFull) for o in outcomes if o is not None)
    assert layer.stats["channel_full"] + other.stats["channel_full"] == 51


async def test_expired_messages_are_dropped(cluster_layer: LayerFactory) -> None:
    layer = cluster_layer(expiry=1)
    local = await layer.new_channel()
    await layer.send("old.q", {"n": 1})
    await layer.send(local, {"n": 2})
    await asyncio.sleep(1.3)
    assert await layer.receive_many("old.q", 5, timeout=0.2) == []
    assert await layer.receive_many(local, 5, timeout=0.3) == []


async def test_hash_tag_in_the_prefix_keeps_every_key_on_one_slot(
    cluster_layer: LayerFactory, cluster_flushed: RedisCluster
) -> None:
    layer = cluster_layer(prefix="bus{one}")
    channels = [f"svc{i}.request" for i in range(10)] + [await layer.new_channel()]
    for channel in channels:
        await layer.send(channel, {"c": channel})
    counts = _keys_per_master(cluster_flushed)
    assert sorted(counts.values()) == [0, 0, len(channels)]
    for channel in channels:
        assert await asyncio.wait_for(layer.receive(channel), 5) == {"c": channel}


def _migrate_slot(cluster: RedisCluster, slot: int, source: int, target: int, finish: bool) -> None:
    """Move ``slot`` from master ``source`` to master ``target`` as redis-cli does."""
    with cluster.client(source) as src, cluster.client(target) as dst:
        src_id = src.execute_command("CLUSTER", "MYID").decode()
        dst_id = dst.execute_command("CLUSTER", "MYID").decode()
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
        if finish:
            for port in cluster.masters():
                with cluster.client(port) as each:
                    each.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)


async def test_moved_and_ask_are_followed_while_a_slot_migrates(
    cluster_layer: LayerFactory, cluster_flushed: RedisCluster
) -> None:
    layer = cluster_layer()
    channel = "moving.request"
    key = "asgi" + channel
    slot = key_slot(key)
    source = cluster_flushed.master_of(key)
    target = next(p for p in cluster_flushed.masters() if p != source)
    try:
        await layer.send(channel, {"n": 0})
        # Half way: the key went to the target, the slot is still the source's -> ASK.
        await asyncio.to_thread(_migrate_slot, cluster_flushed, slot, source, target, False)
        await layer.send(channel, {"n": 1})
        redirected = layer.stats["redirects"]
        assert redirected >= 1
        # Finished: the source answers MOVED; the layer learns the new owner.
        await asyncio.to_thread(_migrate_slot, cluster_flushed, slot, source, target, True)
        await layer.send(channel, {"n": 2})
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            got += await layer.receive_many(channel, 10, timeout=1)
        assert [m["n"] for m in got] == [0, 1, 2]
        assert layer.stats["redirects"] > redirected
        assert cluster_flushed.master_of(key) == target
    finally:
        # Give the slot back so the other tests see the original layout.
        await asyncio.to_thread(_migrate_slot, cluster_flushed, slot, target, source, True)


async def test_consumer_processes_never_share_a_message(
    cluster_layer: LayerFactory, cluster_flushed: RedisCluster
) -> None:
    channels = ["work0.queue", "work1.queue"]
    assert len({cluster_flushed.master_of("asgi" + c) for c in channels}) == 2
    config = {"hosts": cluster_flushed.urls[:2], "cluster": True, "capacity": 10_000}
    layer = cluster_layer(capacity=10_000)
    per_process = await share_among_consumers(layer, config, channels, total=3000)
    check_each_delivered_once(per_process, 3000)


async def test_a_cluster_is_not_mistaken_for_one_redis_or_the_other_way(
    redis_cluster: RedisCluster, redis_flushed: str
) -> None:
    # A plain layer on a cluster node would fail every command of other slots (MOVED).
    plain = RedisChannelLayer(hosts=redis_cluster.urls[:1])
    with pytest.raises(RedisConfigError, match='add "cluster": True'):
        await plain.check()
    not_a_cluster = RedisChannelLayer(hosts=[redis_flushed], cluster=True)
    with pytest.raises(RedisConfigError, match="not a Redis Cluster node"):
        await not_a_cluster.check()
    await plain.close()
    await not_a_cluster.close()
