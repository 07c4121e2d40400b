"""Redis Cluster routing without a server: key slots, slot maps, redirections and retries."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pytest

from servicebus.layers import RedisChannelLayer, RedisUnavailable
from servicebus.layers import cluster as cluster_module
from servicebus.layers.cluster import (
    SLOTS,
    Address,
    ClusterRouter,
    SlotClient,
    key_slot,
    parse_shards,
    parse_slots,
)
from servicebus.layers.errors import RedisAsk, RedisBusy, RedisMoved, RedisRoleChanged
from servicebus.layers.hosts import parse_host
from servicebus.layers.resp import pack
from servicebus.layers.stats import LayerStats

A: Address = ("10.0.0.1", 7000)
B: Address = ("10.0.0.2", 7001)


def test_key_slot_is_redis_crc16_with_hash_tags() -> None:
    assert key_slot("123456789") == 12739  # the example of the Redis Cluster spec
    assert key_slot(b"123456789") == 12739
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("{user1000}.following") == key_slot("user1000")
    assert key_slot("foo{}{bar}") != key_slot("bar")  # empty tag: the whole key
    assert key_slot("foo{bar}{zap}") == key_slot("bar")  # the first tag only
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")
    assert key_slot("asgi{bus}a.request") == key_slot("asgi{bus}specific.x!")
    assert all(0 <= key_slot(f"k{i}") < SLOTS for i in range(1000))


def _node(port: int, role: str, health: str, ip: str = "127.0.0.1") -> list[Any]:
    fields = {"id": b"x", "port": port, "ip": ip.encode(), "endpoint": ip.encode()}
    fields.update({"role": role.encode(), "replication-offset": 1, "health": health.encode()})
    return [item for name, value in fields.items() for item in (name.encode(), value)]


def test_parse_shards_takes_the_online_master_of_each_shard() -> None:
    reply = [
        [b"slots", [0, 5460], b"nodes", [_node(7000, "master", "online"),
                                         _node(7003, "replica", "online")]],
        # After a failover the failed master is still listed as a master.
        [b"slots", [5461, 10922, 16000, 16383],
         b"nodes", [_node(7001, "master", "fail"), _node(7004, "master", "online")]],
        # No usable master: its slots stay unowned until the next refresh.
        [b"slots", [10923, 15999], b"nodes", [_node(7002, "master", "fail")]],
    ]  # fmt: skip
    owners = parse_shards(reply, ("127.0.0.1", 7000), tls=False)
    assert owners == {
        ("127.0.0.1", 7000): [0, 5460],
        ("127.0.0.1", 7004): [5461, 10922, 16000, 16383],
    }
    unknown = [[b"slots", [0, 16383], b"nodes", [_node(7000, "master", "online", ip="?")]]]
    assert parse_shards(unknown, ("10.1.1.1", 7000), tls=False) == {("10.1.1.1", 7000): [0, 16383]}


def test_parse_slots_for_servers_without_cluster_shards() -> None:
    reply = [[0, 8191, [b"10.0.0.1", 7000, b"id"]], [8192, 16383, [b"", 7001, b"id"]]]
    owners = parse_slots(reply, ("10.0.0.9", 7001))
    assert owners == {A: [0, 8191], ("10.0.0.9", 7001): [8192, 16383]}


def test_cluster_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="database 0"):
        RedisChannelLayer(hosts=["redis://127.0.0.1:7000/1"], cluster=True)
    with pytest.raises(ValueError, match="Sentinel"):
        RedisChannelLayer(
            hosts=[{"master_name": "m", "sentinels": [("127.0.0.1", 26379)]}], cluster=True
        )


class FakeNode:
    """A node's command client: each submit takes the next programmed outcome."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = deque(outcomes)
        self.calls: list[tuple[Any, int]] = []

    def submit(self, data: Any, replies: int = 1) -> asyncio.Future[Any]:
        self.calls.append((data, replies))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        outcome = self.outcomes.popleft()
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
        return future


def _router(owner: Address | None, refreshed: dict[Address, list[int]]) -> ClusterRouter:
    router = ClusterRouter([parse_host({"address": "redis://10.0.0.1:7000"})], LayerStats())
    router.owners = [owner] * SLOTS

    async def ask(spec: Any, address: Address) -> dict[Address, list[int]]:
        return refreshed

    router._ask = ask  # type: ignore[method-assign]
    return router


def _client(router: ClusterRouter, nodes: dict[Address, FakeNode], slot: int) -> SlotClient:
    return SlotClient(router, nodes.__getitem__, asyncio.get_running_loop(), slot)  # type: ignore[arg-type]


async def test_moved_updates_the_map_and_resends_to_the_new_master() -> None:
    nodes = {A: FakeNode(RedisMoved("MOVED 42 10.0.0.2:7001")), B: FakeNode(b"done")}
    router = _router(A, {B: [0, SLOTS - 1]})
    client = _client(router, nodes, 42)
    assert await client.submit(pack(("GET", "k"))) == b"done"
    assert router.owners[42] == B
    assert nodes[B].calls == [(pack(("GET", "k")), 1)]
    assert router.stats["redirects"] == 1


async def test_ask_resends_once_after_asking_and_keeps_the_map() -> None:
    nodes = {A: FakeNode(RedisAsk("ASK 42 10.0.0.2:7001")), B: FakeNode(b"done")}
    router = _router(A, {A: [0, SLOTS - 1]})
    assert await _client(router, nodes, 42).submit(pack(("GET", "k"))) == b"done"
    ((data, replies),) = nodes[B].calls
    assert data == [pack(("ASKING",)), pack(("GET", "k"))]
    assert replies == 2  # ASKING's reply is read and dropped
    assert router.owners[42] == A


@pytest.mark.parametrize(
    "error",
    [
        RedisBusy("TRYAGAIN Multiple keys request during rehashing of slot"),
        RedisBusy("CLUSTERDOWN The cluster is down"),
        RedisRoleChanged("READONLY You can't write against a read only replica."),
    ],
)
async def test_busy_or_demoted_is_retried_at_the_refreshed_owner(error: Exception) -> None:
    nodes = {A: FakeNode(error), B: FakeNode(b"done")}
    router = _router(A, {B: [0, SLOTS - 1]})
    assert await _client(router, nodes, 7).submit(pack(("GET", "k"))) == b"done"
    assert router.owners[7] == B


async def test_a_lost_connection_is_never_resent(monkeypatch: pytest.MonkeyPatch) -> None:
    # The command may have run: sending it again could deliver a message twice.
    nodes = {A: FakeNode(RedisUnavailable("connection reset"), b"second")}
    router = _router(A, {A: [0, SLOTS - 1]})
    with pytest.raises(RedisUnavailable, match="reset"):
        await _client(router, nodes, 7).submit(pack(("GET", "k")))
    assert len(nodes[A].calls) == 1
    await asyncio.sleep(0.01)
    assert router.stats["slot_map_refreshes"] == 1  # the map is reloaded for the next one


async def test_retries_are_bounded_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_module, "RETRY_SECONDS", 0.3)
    down = [RedisBusy("CLUSTERDOWN The cluster is down") for _ in range(100)]
    nodes = {A: FakeNode(*down)}
    router = _router(A, {A: [0, SLOTS - 1]})
    started = asyncio.get_running_loop().time()
    with pytest.raises(RedisUnavailable, match="gave up"):
        await _client(router, nodes, 7).submit(pack(("GET", "k")))
    assert asyncio.get_running_loop().time() - started < 1.0
    assert 2 <= len(nodes[A].calls) <= cluster_module.MAX_ATTEMPTS


async def test_an_unknown_slot_waits_for_the_map() -> None:
    nodes = {A: FakeNode(b"done")}
    router = _router(None, {A: [0, SLOTS - 1]})
    assert await _client(router, nodes, 9).submit(pack(("GET", "k"))) == b"done"
    assert router.masters == (A,)


async def test_no_node_answering_is_unavailable() -> None:
    router = ClusterRouter([parse_host({"address": "redis://127.0.0.1:1"})], LayerStats())
    with pytest.raises(RedisUnavailable, match="no cluster node answered"):
        await router.refresh()
