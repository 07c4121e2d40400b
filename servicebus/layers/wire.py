"""Hand-packed commands on held connections: the layer's hot path, without redis-py's wrappers.

redis-py's generic path costs a pool checkout (condition, lock, timeout, a dirty-socket
check, metrics) plus retry and event plumbing per command, and a task per socket write
(``wait_for``). The layer's hot commands (coalesced EVALSHA, BZMPOP/ZMPOP) only need
write + read on a clean connection, so a ``Lane`` keeps a few connections of a pool
checked out and reuses them, and ``roundtrip`` writes the packed bytes and reads the
reply with the connection's own parser, under the connection's socket timeout.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def bulk(value: Any) -> bytes:
    """One RESP bulk string, encoded as redis-py encodes arguments."""
    if type(value) is bytes:
        data = value
    elif isinstance(value, str):
        data = value.encode()
    elif isinstance(value, float):
        data = repr(value).encode()
    else:
        data = str(value).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack(args: Sequence[Any]) -> bytes:
    """A whole RESP command."""
    return b"*%d\r\n%b" % (len(args), b"".join(map(bulk, args)))


def _clean(conn: Any) -> bool:
    # What the pool's ensure_connection checks, without its awaits: connected, the
    # server has not closed it (EOF seen), no unread bytes.
    if not isinstance(conn, AbstractConnection):
        return True  # a test double
    reader = conn._reader
    if reader is None or conn._writer is None or reader.at_eof() or reader._buffer:  # type: ignore[attr-defined]
        return False
    hiredis_reader = getattr(conn._parser, "_reader", None)
    has_data = getattr(hiredis_reader, "has_data", None)
    return not (has_data is not None and has_data())


async def roundtrip(conn: Any, packed: bytes) -> Any:
    """Send one packed command on ``conn`` and return its reply (errors as redis-py's)."""
    if not isinstance(conn, AbstractConnection):
        await conn.send_packed_command(packed, check_health=False)
        return await conn.read_response()
    if not conn.is_connected:
        await conn.connect_check_health(check_health=False)
    return await read_reply(conn, packed)


def write_now(conn: Any, packed: bytes) -> bool:
    """Write ``packed`` on a connected real connection without awaiting.

    Returns False (nothing written) when that is not possible: a test double, or
    a connection that is not connected. The reply must then be read with
    ``read_reply`` (which also waits for the write buffer to drain if needed).
    """
    if not isinstance(conn, AbstractConnection) or not conn.is_connected:
        return False
    writer = conn._writer
    if writer is None:
        return False
    writer.write(packed)
    return True


async def read_reply(conn: AbstractConnection, packed: bytes | None = None) -> Any:
    """Read the reply of a command written by ``write_now``, or write ``packed`` first.

    Errors come as redis-py's; on any failure the connection is dropped (reconnected
    on next use), since its state is unknown.
    """
    timeout = conn.socket_timeout
    try:
        writer = conn._writer
        assert writer is not None
        if packed is not None:
            writer.write(packed)
        if writer.transport.get_write_buffer_size():
            # The kernel pushed back (a large batch): wait for room, bounded.
            async with asyncio.timeout(timeout):
                await writer.drain()
        async with asyncio.timeout(timeout):
            response = await conn._parser.read_response()  # type: ignore[attr-defined]
    except TimeoutError:
        # asyncio's timeout (a builtin TimeoutError, hence before OSError).
        await conn.disconnect(nowait=True)
        raise RedisTimeoutError(f"Timeout reading from {conn._host_error()}") from None
    except OSError as exc:
        await conn.disconnect(nowait=True)
        raise RedisConnectionError(
            f"Error while talking to {conn._host_error()} : {exc.args}"
        ) from exc
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    if isinstance(response, ResponseError):
        raise response from None
    return response


class Lane:
    """Up to ``keep`` connections of one pool, held between commands and reused.

    A connection goes back to the idle list only after a complete reply; one that
    failed, was cancelled, or was closed by the server is returned to the pool, which
    reconnects it on its next use.
    """

    __slots__ = ("__weakref__", "_idle", "_keep_at_most", "_pool")

    def __init__(self, pool: Any, keep: int) -> None:
        self._pool = pool
        self._keep_at_most = keep
        self._idle: list[Any] = []

    async def _acquire(self) -> Any:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if _clean(conn):
                return conn
            await conn.disconnect()
            await self._pool.release(conn)
        return await self._pool.get_connection()

    def take_ready(self) -> Any | None:
        """An idle connection that can be written to right now, or None (no await)."""
        idle = self._idle
        while idle:
            conn = idle[-1]
            if not isinstance(conn, AbstractConnection):
                return None  # a test double: use call()
            if _clean(conn) and conn.is_connected:
                return idle.pop()
            return None  # let _acquire() clean it up (that needs awaits)
        return None

    async def call_written(self, conn: Any) -> Any:
        """Read the reply of a command ``write_now`` wrote on ``conn`` (from ``take_ready``)."""
        try:
            reply = await read_reply(conn)
        except ResponseError:
            await self._keep(conn)
            raise
        except BaseException:
            await self._pool.release(conn)
            raise
        await self._keep(conn)
        return reply

    async def call(self, packed: bytes) -> Any:
        """Run one packed command; raises what redis-py would."""
        conn = await self._acquire()
        try:
            reply = await roundtrip(conn, packed)
        except ResponseError:
            await self._keep(conn)  # a complete error reply: the connection is clean
            raise
        except BaseException:
            await self._pool.release(conn)
            raise
        await self._keep(conn)
        return reply

    async def _keep(self, conn: Any) -> None:
        if len(self._idle) < self._keep_at_most:
            self._idle.append(conn)
        else:
            await self._pool.release(conn)

    async def aclose(self) -> None:
        """Give the held connections back to the pool."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._pool.release(conn)


_lanes: weakref.WeakKeyDictionary[Any, Lane] = weakref.WeakKeyDictionary()


def lane_of(pool: Any, keep: int = 4) -> Lane:
    """The lane of ``pool`` (created on first use; pools are per event loop)."""
    lane = _lanes.get(pool)
    if lane is None:
        lane = _lanes[pool] = Lane(pool, keep)
    return lane


async def close_lane(pool: Any) -> None:
    """Release the connections ``pool``'s lane holds (before the pool is closed)."""
    lane = _lanes.pop(pool, None)
    if lane is not None:
        await lane.aclose()
