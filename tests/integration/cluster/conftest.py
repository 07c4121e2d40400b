"""Fixtures of the scaling tests: a real Redis Cluster, Sentinel, several plain hosts.

Every server is a private process on a free loopback port, stopped after its test or
session; nothing here touches the machine's own Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.layers import LayerFactory, layer_factory
from tests.support.redis_cluster import RedisCluster

pytestmark = pytest.mark.redis


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """3 masters + 3 replicas for the session (tests that fail nodes over make their own)."""
    with RedisCluster(masters=3, replicas=1) as cluster:
        yield cluster


@pytest.fixture
def cluster_flushed(redis_cluster: RedisCluster) -> RedisCluster:
    """The session cluster, every master emptied before the test."""
    for port in redis_cluster.masters():
        with redis_cluster.client(port) as client:
            client.flushall()
    return redis_cluster


@pytest.fixture
async def cluster_layer(cluster_flushed: RedisCluster) -> AsyncIterator[LayerFactory]:
    """Build layers on the (flushed) session cluster; each is closed after the test."""
    # Two seeds are plenty.
    async with layer_factory(hosts=cluster_flushed.urls[:2], cluster=True) as make:
        yield make
