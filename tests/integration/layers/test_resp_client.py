"""The RESP client against real redis-servers: handshake, errors, timeouts, blocking, sentinel."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from servicebus.layers.errors import (
    RedisAuthError,
    RedisCommandError,
    RedisRoleChanged,
    RedisTLSError,
    RedisUnavailable,
)
from servicebus.layers.hosts import parse_host
from servicebus.layers.pool import BlockingPool, CommandClient
from servicebus.layers.resp import (
    BIG_PIECE,
    HandshakeClosed,
    open_connection,
    pack,
    pack_pieces,
)
from servicebus.layers.sentinel import connect
from tests.support.redis_server import RedisServer, free_port, wait_port

pytestmark = pytest.mark.redis


async def test_handshake_learns_version_role_and_id(redis_flushed: str) -> None:
    conn = await open_connection(parse_host({"address": redis_flushed}))
    try:
        assert conn.version >= (7, 0)
        assert conn.role == "master"
        assert conn.client_id == await conn.call("CLIENT", "ID")
    finally:
        conn.close()


async def test_pipelined_commands_and_a_big_value(redis_flushed: str) -> None:
    conn = await open_connection(parse_host({"address": redis_flushed}))
    try:
        futures = [conn.send(pack(["INCR", "n"])) for _ in range(1000)]
        assert [await f for f in futures] == list(range(1, 1001))
        payload = bytes(range(256)) * (4 * BIG_PIECE // 256)
        assert await conn.send(pack_pieces(["SET", "big", payload])) == b"OK"
        assert await conn.call("GET", "big") == payload
        with pytest.raises(RedisCommandError, match="WRONGTYPE"):
            await conn.call("LPUSH", "big", "x")
        assert await conn.call("PING") == b"PONG"  # still usable after an error reply
    finally:
        conn.close()


async def test_db_is_selected(redis_flushed: str) -> None:
    conn = await open_connection(parse_host({"address": redis_flushed[:-1] + "3"}))
    try:
        await conn.call("SET", "in3", "1")
    finally:
        conn.close()
    client = redis.Redis.from_url(redis_flushed[:-1] + "3")
    assert client.get("in3") == b"1"
    client.close()


async def test_wrong_and_missing_passwords_are_auth_errors(acl_redis: RedisServer) -> None:
    for url in (
        f"redis://alice:wrong@127.0.0.1:{acl_redis.port}/0",
        f"redis://127.0.0.1:{acl_redis.port}/0",
        f"redis://:wrong@127.0.0.1:{acl_redis.port}/0",
    ):
        with pytest.raises(RedisAuthError):
            await open_connection(parse_host({"address": url}))
    good = await open_connection(
        parse_host({"address": f"redis://alice:wonderland@127.0.0.1:{acl_redis.port}/0"})
    )
    assert await good.call("PING") == b"PONG"
    good.close()


async def test_unreachable_is_unavailable_and_fast() -> None:
    started = time.monotonic()
    with pytest.raises(RedisUnavailable):
        await open_connection(parse_host({"address": f"redis://127.0.0.1:{free_port()}/0"}))
    assert time.monotonic() - started < 2


async def test_a_stalled_server_times_out(private_redis: RedisServer) -> None:
    spec = parse_host({"address": private_redis.url, "socket_timeout": 0.3})
    conn = await open_connection(spec)
    admin = redis.Redis.from_url(private_redis.url)
    try:
        admin.execute_command("CLIENT", "PAUSE", 3000, "ALL")
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match="timeout"):
            await conn.send(pack(["PING"]), timeout=spec.socket_timeout)
        assert time.monotonic() - started < 2
        assert not conn.is_open
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()


async def test_command_client_reconnects_after_an_outage(private_redis: RedisServer) -> None:
    client = CommandClient(parse_host({"address": private_redis.url}), asyncio.get_running_loop())
    try:
        assert await client.execute("SET", "k", "1") == b"OK"
        private_redis.stop()
        with pytest.raises(RedisUnavailable):
            await asyncio.wait_for(client.execute("GET", "k"), 5)
        private_redis.start()
        assert await client.execute("PING") == b"PONG"
        assert await client.pipeline([["SET", "a", "1"], ["GET", "a"]]) == [b"OK", b"1"]
    finally:
        await client.aclose()


async def test_blocking_pop_is_unblocked_by_client_unblock(redis_flushed: str) -> None:
    spec = parse_host({"address": redis_flushed})
    pool = BlockingPool(spec, limit=4, keep=2)
    commands = CommandClient(spec, asyncio.get_running_loop())
    try:
        conn = await pool.acquire()
        pop = conn.send(pack(["BZMPOP", 30, 1, "nothing", "MIN"]), timeout=35)
        await asyncio.sleep(0.05)
        started = time.monotonic()
        assert await commands.execute("CLIENT", "UNBLOCK", conn.client_id) == 1
        assert await asyncio.wait_for(pop, 5) is None
        assert time.monotonic() - started < 1
        pool.release(conn)
        # A lent-and-returned connection is reused.
        again = await pool.acquire()
        assert again is conn
        pool.release(again)
    finally:
        await pool.aclose()
        await commands.aclose()


async def test_tls(tls_redis: tuple[RedisServer, Path], private_redis: RedisServer) -> None:
    server, cert = tls_redis
    trusted = parse_host({"address": f"rediss://127.0.0.1:{server.port}/0", "ssl_ca_certs": cert})
    conn = await open_connection(trusted)
    assert await conn.call("PING") == b"PONG"
    conn.close()
    # The self-signed certificate is not in the system store.
    with pytest.raises(RedisTLSError, match="certificate"):
        await open_connection(parse_host({"address": f"rediss://127.0.0.1:{server.port}/0"}))
    # TLS to a plain port: the server waits for a command, the TLS handshake times out.
    started = time.monotonic()
    with pytest.raises(RedisTLSError, match="plain port"):
        await open_connection(
            parse_host(
                {"address": f"rediss://{private_redis.url[8:]}", "socket_connect_timeout": 0.3}
            )
        )
    assert time.monotonic() - started < 2
    # Plain to a TLS port: the server hangs up during the handshake.
    with pytest.raises(HandshakeClosed, match="rediss://"):
        await open_connection(parse_host({"address": f"redis://127.0.0.1:{server.port}/0"}))


@pytest.fixture
def sentinel(private_redis: RedisServer, tmp_path: Path) -> Iterator[int]:
    """A real Sentinel (redis-server --sentinel) watching ``private_redis`` as 'mymaster'."""
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {private_redis.port} 1\n"
    )
    proc = subprocess.Popen(
        ["redis-server", str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


async def test_sentinel_names_the_master(sentinel: int, private_redis: RedisServer) -> None:
    spec = parse_host(
        {
            "master_name": "mymaster",
            "sentinels": [("127.0.0.1", free_port()), ("127.0.0.1", sentinel)],
        }
    )
    conn = await connect(spec)
    try:
        assert await conn.call("SET", "via", "sentinel") == b"OK"
    finally:
        conn.close()
    assert redis.Redis.from_url(private_redis.url).get("via") == b"sentinel"
    unknown = parse_host({"master_name": "nobody", "sentinels": [("127.0.0.1", sentinel)]})
    with pytest.raises(RedisUnavailable, match="nobody"):
        await connect(unknown)


async def test_a_demoted_master_retires_the_connection(private_redis: RedisServer) -> None:
    # READONLY / UNBLOCKED: the server stopped being a master. The connection takes no
    # new commands (the next one finds the master again) and closes once idle.
    conn = await open_connection(parse_host({"address": private_redis.url}))
    blocked = await open_connection(parse_host({"address": private_redis.url}))
    try:
        pop = blocked.send(pack(["BZMPOP", 5, 1, "k", "MIN"]), 10)
        await asyncio.sleep(0.1)
        with RedisServer() as other:
            await conn.call("REPLICAOF", "127.0.0.1", other.port)
            with pytest.raises(RedisRoleChanged, match="UNBLOCKED"):
                await pop
            assert not blocked.is_open
            with pytest.raises(RedisRoleChanged, match="READONLY"):
                await conn.call("SET", "k", "v")
            assert not conn.is_open
            with pytest.raises(RedisUnavailable):  # it closed itself once idle
                await conn.call("PING")
    finally:
        conn.close()
        blocked.close()
