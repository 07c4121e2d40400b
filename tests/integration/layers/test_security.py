"""ACL users and TLS, passed through to redis-py from the host config."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
import redis.exceptions

from servicebus.layers import RedisChannelLayer
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis


async def test_acl_user_can_send_and_receive(acl_redis: RedisServer) -> None:
    url = f"redis://alice:wonderland@127.0.0.1:{acl_redis.port}/0"
    layer = RedisChannelLayer(hosts=[url])
    try:
        await layer.send("svc", {"n": 1})
        assert await layer.receive("svc") == {"n": 1}
        reply = await layer.new_channel()
        await layer.send(reply, {"n": 2})
        assert await asyncio.wait_for(layer.receive(reply), 5) == {"n": 2}
    finally:
        await layer.close()


async def test_wrong_password_is_a_clear_error(acl_redis: RedisServer) -> None:
    url = f"redis://alice:wrong@127.0.0.1:{acl_redis.port}/0"
    layer = RedisChannelLayer(hosts=[url])
    try:
        with pytest.raises(redis.exceptions.AuthenticationError, match="invalid username"):
            await layer.send("svc", {})
        # Receives do not retry forever on a wrong password.
        with pytest.raises(redis.exceptions.AuthenticationError):
            await asyncio.wait_for(layer.receive_many("svc", 1, timeout=1), 5)
    finally:
        await layer.close()


async def test_tls_connection(tls_redis: tuple[RedisServer, Path]) -> None:
    server, cert = tls_redis
    host = {"address": f"rediss://127.0.0.1:{server.port}/0", "ssl_ca_certs": str(cert)}
    layer = RedisChannelLayer(hosts=[host])
    try:
        await layer.send("secure", {"n": 1})
        assert await layer.receive("secure") == {"n": 1}
        reply = await layer.new_channel()
        await layer.send(reply, {"n": 2})
        assert await asyncio.wait_for(layer.receive(reply), 5) == {"n": 2}
    finally:
        await layer.close()
