"""Fixtures for the layer's integration tests: layers on the session Redis, private servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from servicebus.layers import RedisChannelLayer
from tests.support.layers import LayerFactory, layer_factory
from tests.support.redis_server import RedisServer, tls_redis_server

pytestmark = pytest.mark.redis


@pytest.fixture
async def make_layer(redis_flushed: str) -> AsyncIterator[LayerFactory]:
    """Build layers on the (flushed) session Redis; each is closed after the test."""
    async with layer_factory(hosts=[redis_flushed]) as make:
        yield make


@pytest.fixture
async def layer(make_layer: LayerFactory) -> RedisChannelLayer:
    """A layer with default settings on the flushed session Redis."""
    return make_layer()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone (for outages and config changes)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def acl_redis() -> Iterator[RedisServer]:
    """A server whose default user needs a password, plus a user alice/wonderland."""
    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        admin.execute_command("ACL", "SETUSER", "alice", "on", ">wonderland", "~*", "&*", "+@all")
        admin.execute_command("CONFIG", "SET", "requirepass", "adminpw")
        admin.close()
        yield server


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, Path]]:
    """A TLS-only redis-server and its self-signed certificate (the client's CA file)."""
    with tls_redis_server(tmp_path) as made:
        yield made
