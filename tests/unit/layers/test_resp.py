"""The RESP client without a server: encoding, reply routing, errors, timeouts, pieces."""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
import pytest

from servicebus.layers.errors import (
    RedisAuthError,
    RedisCommandError,
    RedisNoScriptError,
    RedisProtocolError,
    RedisUnavailable,
)
from servicebus.layers.resp import BIG_PIECE, RedisConnection, bulk, pack, pack_pieces


class FakeTransport(asyncio.Transport):
    """Records writes; ``close``/``abort`` report the loss to the protocol, as asyncio does."""

    def __init__(self, protocol: RedisConnection) -> None:
        super().__init__()
        self.protocol = protocol
        self.writes: list[Any] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)


def _connection() -> tuple[RedisConnection, FakeTransport]:
    conn = RedisConnection(asyncio.get_running_loop(), "Redis at test")
    transport = FakeTransport(conn)
    conn.connection_made(transport)
    return conn, transport


def _parse(data: bytes) -> Any:
    reader = hiredis.Reader()
    reader.feed(data)
    return reader.gets()


def test_commands_are_resp_arrays_of_bulk_strings() -> None:
    args = ["EVALSHA", b"\x00\r\nbin", 3, 2.5, "é"]
    assert _parse(pack(args)) == [b"EVALSHA", b"\x00\r\nbin", b"3", b"2.5", "é".encode()]
    assert bulk(memoryview(b"ab")) == b"$2\r\nab\r\n"
    big = b"x" * BIG_PIECE
    pieces = pack_pieces(["SET", "k", big])
    assert any(piece is big for piece in pieces)  # written as it is, not copied
    assert _parse(b"".join(pieces)) == [b"SET", b"k", big]


async def test_replies_resolve_futures_in_order_whatever_the_chunking() -> None:
    conn, transport = _connection()
    futures = [conn.send(pack(["GET", str(i)])) for i in range(4)]
    stream = b"$1\r\na\r\n:42\r\n*2\r\n$1\r\nb\r\n$-1\r\n+OK\r\n"
    for i in range(len(stream)):
        conn.data_received(stream[i : i + 1])
    assert [await f for f in futures] == [b"a", 42, [b"b", None], b"OK"]
    assert len(transport.writes) == 4
    assert conn.idle


async def test_error_replies_are_classified() -> None:
    conn, _ = _connection()
    plain, noscript, auth, ok = (conn.send(b"x") for _ in range(4))
    conn.data_received(b"-ERR wrong type\r\n-NOSCRIPT No matching script\r\n")
    conn.data_received(b"-WRONGPASS invalid username-password pair\r\n+OK\r\n")
    with pytest.raises(RedisCommandError, match="wrong type"):
        await plain
    with pytest.raises(RedisNoScriptError):
        await noscript
    with pytest.raises(RedisAuthError):
        await auth
    assert await ok == b"OK"  # an error reply leaves the connection usable
    assert conn.is_open


async def test_a_pipeline_resolves_its_last_reply() -> None:
    conn, _ = _connection()
    future = conn.send([pack(["MULTI"]), pack(["INCR", "a"]), pack(["EXEC"])], replies=3)
    after = conn.send(pack(["PING"]))
    conn.data_received(b"+OK\r\n+QUEUED\r\n*1\r\n:1\r\n+PONG\r\n")
    assert await future == [1]
    assert await after == b"PONG"


async def test_garbage_from_the_server_fails_every_pending_command() -> None:
    conn, transport = _connection()
    first, second = conn.send(b"a"), conn.send(b"b")
    conn.data_received(b"?what\r\n")
    for future in (first, second):
        with pytest.raises(RedisProtocolError):
            await future
    assert transport.closed
    assert not conn.is_open
    with pytest.raises(RedisUnavailable):
        await conn.send(b"c")


async def test_a_reply_nobody_asked_for_drops_the_connection() -> None:
    conn, transport = _connection()
    conn.data_received(b"+OK\r\n")
    assert transport.closed
    assert not conn.is_open


async def test_lost_connection_fails_pending_with_unavailable() -> None:
    conn, _ = _connection()
    future = conn.send(b"x")
    conn.connection_lost(ConnectionResetError("reset"))
    with pytest.raises(RedisUnavailable, match="reset"):
        await future


async def test_a_late_reply_times_the_connection_out() -> None:
    conn, transport = _connection()
    loop = asyncio.get_running_loop()
    started = loop.time()
    future = conn.send(b"x", timeout=0.1)
    with pytest.raises(RedisUnavailable, match="timeout"):
        await asyncio.wait_for(future, 2)
    assert 0.09 <= loop.time() - started < 1
    assert transport.closed


async def test_replies_in_time_keep_the_connection() -> None:
    conn, transport = _connection()
    for _ in range(3):
        future = conn.send(b"x", timeout=0.05)
        conn.data_received(b"+OK\r\n")
        assert await future == b"OK"
        await asyncio.sleep(0.04)
    await asyncio.sleep(0.1)  # the watchdog fired with nothing pending
    assert not transport.closed


async def test_a_cancelled_waiter_does_not_shift_the_replies() -> None:
    conn, _ = _connection()
    first = conn.send(b"a")
    second = conn.send(b"b")
    first.cancel()
    conn.data_received(b"$1\r\n1\r\n$1\r\n2\r\n")
    assert await second == b"2"


async def test_big_values_are_written_without_joining() -> None:
    conn, transport = _connection()
    payload = bytes(2 * BIG_PIECE)
    conn.send(pack_pieces(["SET", "k", payload]))
    assert any(piece is payload for piece in transport.writes)
    assert sum(len(p) for p in transport.writes) == len(
        b"".join(pack_pieces(["SET", "k", payload]))
    )
    # The small pieces around it went in as few writes as possible.
    assert len(transport.writes) == 3


async def test_a_shorter_timeout_after_a_longer_one_is_kept() -> None:
    conn, _ = _connection()
    loop = asyncio.get_running_loop()
    first = conn.send(b"x", timeout=5.0)
    conn.data_received(b"+OK\r\n")
    await first
    started = loop.time()
    with pytest.raises(RedisUnavailable, match="timeout"):
        await asyncio.wait_for(conn.send(b"y", timeout=0.1), 3)
    assert loop.time() - started < 1
