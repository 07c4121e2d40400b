"""The connections of one event loop to one Redis: pipelined commands, blocking pops.

``CommandClient`` sends every non-blocking command of a loop down one pipelined
connection (a write never waits for a free connection). ``BlockingPool`` lends a
connection per blocking pop (BZMPOP), since a blocked connection can carry nothing else.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Iterable
from typing import Any, Protocol

from .errors import RedisUnavailable
from .hosts import HostSpec
from .resp import Piece, RedisConnection, pack
from .sentinel import connect

logger = logging.getLogger(__name__)


def forward(source: asyncio.Future[Any], *, target: asyncio.Future[Any]) -> None:
    """Done-callback: settle ``target`` as ``source`` settled (unless it is done already)."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


async def gather_all(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
    """Their results in order, once every one has settled; then the first error raises."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


class Commands(Protocol):
    """What sends commands: a CommandClient (one Redis) or a cluster SlotClient (one slot)."""

    def submit(self, data: Piece | list[Piece], replies: int = 1) -> asyncio.Future[Any]:
        """Write a packed command; the future of its (last) reply."""
        ...

    async def execute(self, *args: Any) -> Any:
        """Run one command; its reply."""
        ...

    async def pipeline(self, commands: list[list[Any]]) -> list[Any]:
        """Run commands in one round trip; their replies in order."""
        ...


class CommandClient:
    """Non-blocking commands of one loop to one Redis, on one pipelined connection.

    ``submit`` never awaits: while (re)connecting, commands queue and are written in
    order once connected, or fail together with the connect error.
    """

    def __init__(self, spec: HostSpec, loop: asyncio.AbstractEventLoop) -> None:
        self.spec = spec
        self._loop = loop
        self._timeout = spec.socket_timeout
        self._conn: RedisConnection | None = None
        self._connecting: asyncio.Task[RedisConnection] | None = None
        self._queue: list[tuple[Piece | list[Piece], int, asyncio.Future[Any]]] = []
        self._closed = False

    def submit(self, data: Piece | list[Piece], replies: int = 1) -> asyncio.Future[Any]:
        """Write a packed command now (or once connected); the future of its reply."""
        conn = self._conn
        if conn is not None and conn.is_open:
            return conn.send(data, self._timeout, replies)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.append((data, replies, future))
        self._start_connect()
        return future

    async def execute(self, *args: Any) -> Any:
        """Run one command; its reply (an error reply raises)."""
        return await self.submit(pack(args))

    async def pipeline(self, commands: list[list[Any]]) -> list[Any]:
        """Run commands in one write; their replies in order (the first error raises)."""
        return await gather_all([self.submit(pack(args)) for args in commands])

    async def connection(self) -> RedisConnection:
        """The open connection, connecting first if needed (raises the connect error)."""
        conn = self._conn
        if conn is not None and conn.is_open:
            return conn
        return await asyncio.shield(self._start_connect())

    def _start_connect(self) -> asyncio.Task[RedisConnection]:
        if self._closed:
            raise RedisUnavailable("the layer's connections of this event loop are closed")
        task = self._connecting
        if task is None:
            task = self._connecting = self._loop.create_task(self._connect())
            # Retrieved here so a failed connect nobody awaited is not "never retrieved".
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _connect(self) -> RedisConnection:
        try:
            conn = await connect(self.spec)
        except BaseException as exc:
            queue, self._queue = self._queue, []
            for *_, future in queue:
                if not future.done():
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
            raise
        finally:
            self._connecting = None
        if self._closed:
            conn.close()
            raise RedisUnavailable("the layer's connections of this event loop are closed")
        self._conn = conn
        queue, self._queue = self._queue, []
        for data, replies, future in queue:
            conn.send(data, self._timeout, replies).add_done_callback(
                functools.partial(forward, target=future)
            )
        return conn

    async def aclose(self) -> None:
        """Close the connection (pending commands fail with RedisUnavailable)."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()
            self._conn = None


class BlockingPool:
    """Connections for blocking commands: one each while it runs, up to ``limit`` at once.

    Idle ones are kept (up to ``keep``) and reused; past ``limit``, a pop waits.
    """

    def __init__(self, spec: HostSpec, *, limit: int, keep: int) -> None:
        self.spec = spec
        self._keep = keep
        self._idle: list[RedisConnection] = []
        self._busy: set[RedisConnection] = set()
        self._slots = asyncio.Semaphore(limit)
        self._closed = False

    async def acquire(self) -> RedisConnection:
        """A connection for this caller alone (give it back with ``release``)."""
        if self._closed:
            raise RedisUnavailable("the layer's connections of this event loop are closed")
        await self._slots.acquire()
        try:
            while self._idle:
                conn = self._idle.pop()
                if conn.is_open and conn.idle:
                    break
                conn.close()
            else:
                conn = await connect(self.spec)
        except BaseException:
            self._slots.release()
            raise
        self._busy.add(conn)
        return conn

    def release(self, conn: RedisConnection) -> None:
        """Take a connection back; kept for reuse if it is clean, else closed."""
        if conn not in self._busy:
            return
        self._busy.discard(conn)
        self._slots.release()
        if not self._closed and conn.is_open and conn.idle and len(self._idle) < self._keep:
            self._idle.append(conn)
        else:
            conn.close()

    def discard_idle(self) -> None:
        """Close the idle connections: after a failure they may lead to a server that is
        gone or no longer a master (lent ones fail or are retired on their own)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    async def send(self, data: Piece | list[Piece], timeout: float) -> asyncio.Future[Any]:
        """Run one blocking command on a lent connection, returned when its reply is in."""
        conn = await self.acquire()
        future = conn.send(data, timeout)
        future.add_done_callback(lambda _: self.release(conn))
        return future

    async def aclose(self) -> None:
        """Close every connection, lent ones too (their commands fail)."""
        self._closed = True
        conns = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn.wait_closed()
