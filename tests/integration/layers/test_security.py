"""ACL users, TLS, and check(): fatal configuration errors vs transient unavailability."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from servicebus.layers import (
    RedisAuthError,
    RedisChannelLayer,
    RedisConfigError,
    RedisTLSError,
    RedisUnavailable,
    RedisVersionError,
)
from tests.support.redis_server import RedisServer, free_port

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
        with pytest.raises(RedisAuthError, match="WRONGPASS"):
            await layer.check()
        with pytest.raises(RedisAuthError):
            await layer.send("svc", {})
        # Receives do not retry forever on a wrong password.
        with pytest.raises(RedisAuthError):
            await asyncio.wait_for(layer.receive_many("svc", 1, timeout=1), 5)
        assert isinstance(RedisAuthError("x"), RedisConfigError)
    finally:
        await layer.close()


async def test_missing_password_is_an_auth_error(acl_redis: RedisServer) -> None:
    layer = RedisChannelLayer(hosts=[acl_redis.url])
    with pytest.raises(RedisAuthError, match="NOAUTH"):
        await layer.check()


async def test_check_passes_and_reports_unreachable(acl_redis: RedisServer) -> None:
    await RedisChannelLayer(
        hosts=[f"redis://alice:wonderland@127.0.0.1:{acl_redis.port}/0"]
    ).check()
    with pytest.raises(RedisUnavailable):
        await RedisChannelLayer(hosts=[f"redis://127.0.0.1:{free_port()}/0"]).check()


async def test_a_server_without_hello_is_too_old() -> None:
    # A real redis-server made to look like Redis 5: HELLO does not exist there.
    with RedisServer(extra_args=["--rename-command", "HELLO", ""]) as server:
        with pytest.raises(RedisVersionError, match=r"7\.0"):
            await RedisChannelLayer(hosts=[server.url]).check()


async def test_redis_6_is_refused() -> None:
    # No Redis 6 binary here: a loopback stand-in answers HELLO as Redis 6.2 does.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        fields = [b"server", b"redis", b"version", b"6.2.14", b"proto", 2, b"id", 3]
        reply = b"*%d\r\n" % len(fields)
        for field in fields:
            reply += (
                b":%d\r\n" % field
                if isinstance(field, int)
                else b"$%d\r\n%b\r\n"
                % (
                    len(field),
                    field,
                )
            )
        writer.write(reply)
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(RedisVersionError, match=r"6\.2\.14"):
            await RedisChannelLayer(hosts=[f"redis://127.0.0.1:{port}/0"]).check()
    finally:
        server.close()
        await server.wait_closed()


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


async def test_tls_mismatches_are_fatal_in_check(
    tls_redis: tuple[RedisServer, Path], private_redis: RedisServer
) -> None:
    server, _ = tls_redis
    plain_to_tls = RedisChannelLayer(hosts=[f"redis://127.0.0.1:{server.port}/0"])
    with pytest.raises(RedisTLSError, match="rediss://"):
        await plain_to_tls.check()
    untrusted = RedisChannelLayer(hosts=[f"rediss://127.0.0.1:{server.port}/0"])
    with pytest.raises(RedisTLSError, match="certificate"):
        await untrusted.check()
    tls_to_plain = RedisChannelLayer(
        hosts=[{"address": f"rediss://{private_redis.url[8:]}", "socket_connect_timeout": 0.3}]
    )
    with pytest.raises(RedisTLSError, match="plain port"):
        await tls_to_plain.check()
