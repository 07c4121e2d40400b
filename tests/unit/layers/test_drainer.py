"""Drainer: a stop in the middle of a pop unblocks it and keeps what it took."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgpack

from servicebus.layers.drain import Drainer, LocalBuffers
from servicebus.layers.stats import LayerStats


class FakeConnection:
    """A blocked BZMPOP that Redis answers (with one message) once it is unblocked."""

    client_id = 7
    is_open = True

    def __init__(self) -> None:
        self.pop: asyncio.Future[Any] | None = None
        self.closed = False

    def send(self, data: bytes, timeout: float | None = None) -> asyncio.Future[Any]:
        assert data.split(b"\r\n")[2] == b"BZMPOP"
        self.pop = asyncio.get_running_loop().create_future()
        return self.pop

    def unblock(self) -> None:
        # Redis popped a message just as the drainer was being stopped.
        member = msgpack.packb({"__asgi_channel__": "specific.x!a", "n": 1})
        assert self.pop is not None
        self.pop.set_result([b"key", [[member, str(time.time()).encode()]]])

    def close(self) -> None:
        self.closed = True


class FakePool:
    def __init__(self) -> None:
        self.conn = FakeConnection()
        self.released = 0

    async def acquire(self) -> FakeConnection:
        return self.conn

    def release(self, conn: FakeConnection) -> None:
        self.released += 1


class FakeCommands:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.calls: list[tuple[Any, ...]] = []

    async def execute(self, *args: Any) -> int:
        self.calls.append(args)
        self.conn.unblock()
        return 1


class FakeClients:
    pop_margin = 1.0

    def __init__(self) -> None:
        self.blocking = FakePool()
        self.commands = FakeCommands(self.blocking.conn)


def decode(member: bytes) -> tuple[dict[str, Any], Any]:
    message = msgpack.unpackb(member)
    return message, message.pop("__asgi_channel__", None)


async def test_stopping_mid_pop_unblocks_and_keeps_the_messages() -> None:
    stats = LayerStats()
    buffers = LocalBuffers(lambda c: 10, 60, stats)
    clients = FakeClients()

    async def route() -> FakeClients:
        return clients

    drainer = Drainer(
        route,  # type: ignore[arg-type]
        lambda error: None,
        "asgispecific.x!",
        buffers,
        decode,
        block_timeout=30,
        batch=64,
        stats=stats,
    )
    task = asyncio.ensure_future(drainer.run())
    await asyncio.sleep(0.01)
    task.cancel()
    started = time.monotonic()
    await asyncio.wait([task], timeout=5)
    assert task.cancelled()
    assert time.monotonic() - started < 2  # did not wait out the 30 s pop
    assert clients.commands.calls == [("CLIENT", "UNBLOCK", 7)]
    assert await buffers.get("specific.x!a") == {"n": 1}
    assert clients.blocking.released == 1
