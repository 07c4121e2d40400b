"""Two Redis shards: every channel kind is routed the same way on send and receive."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from servicebus.layers import RedisChannelLayer
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def two_servers() -> Iterator[tuple[RedisServer, RedisServer]]:
    with RedisServer() as first, RedisServer() as second:
        yield first, second


def _key_count(server: RedisServer) -> int:
    client = redis.Redis.from_url(server.url)
    try:
        return int(client.dbsize())
    finally:
        client.close()


async def test_all_channel_kinds_are_received_across_shards(
    two_servers: tuple[RedisServer, RedisServer],
) -> None:
    first, second = two_servers
    layer = RedisChannelLayer(hosts=[first.url, second.url])
    try:
        normal = [f"svc{i}.request" for i in range(12)]
        local = [await layer.new_channel(f"reply{i}") for i in range(12)]
        groups = [f"group{i}" for i in range(12)]
        for shard in (0, 1):  # the names really spread over both shards
            assert any(layer.consistent_hash(n) == shard for n in normal)
            assert any(layer.consistent_hash(layer.non_local_name(c)) == shard for c in local)
            assert any(layer.consistent_hash(g) == shard for g in groups)

        for channel in normal + local:
            await layer.send(channel, {"to": channel})
        assert _key_count(first) > 0
        assert _key_count(second) > 0
        for channel in normal + local:
            assert await asyncio.wait_for(layer.receive(channel), 5) == {"to": channel}

        for group, channel in zip(groups, local, strict=True):
            await layer.group_add(group, channel)
            await layer.group_add(group, f"member.{group}")
        for group in groups:
            await layer.group_send(group, {"group": group})
        for group, channel in zip(groups, local, strict=True):
            assert await asyncio.wait_for(layer.receive(channel), 5) == {"group": group}
            assert await layer.receive(f"member.{group}") == {"group": group}
        await layer.flush()
        assert _key_count(first) == _key_count(second) == 0
    finally:
        await layer.close()
