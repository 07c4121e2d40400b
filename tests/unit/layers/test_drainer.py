"""Drainer: a stop in the middle of a pop unblocks it and keeps what it took."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgpack

from servicebus.layers.drain import Drainer, LocalBuffers
from servicebus.layers.stats import LayerStats


class FakeConnection:
    def __init__(self) -> None:
        self.unblocked = asyncio.Event()
        self.pending: list[tuple[Any, ...]] = []

    async def send_command(self, *args: Any) -> None:
        self.pending.append(args)

    async def send_packed_command(self, packed: bytes, check_health: bool = True) -> None:
        self.pending.append((packed.split(b"\r\n")[2].decode(),))

    async def read_response(self) -> Any:
        command = self.pending.pop(0)
        if command[0] == "CLIENT":
            return 7
        # Redis popped a message just as the drainer was being stopped.
        await self.unblocked.wait()
        member = msgpack.packb({"__asgi_channel__": "specific.x!a", "n": 1})
        return [b"key", [[member, str(time.time()).encode()]]]

    async def disconnect(self) -> None:
        pass


class FakePool:
    def __init__(self) -> None:
        self.conn = FakeConnection()
        self.released = 0

    async def get_connection(self) -> FakeConnection:
        return self.conn

    async def release(self, conn: FakeConnection) -> None:
        self.released += 1


class FakeCommands:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.calls: list[tuple[Any, ...]] = []

    async def execute_command(self, *args: Any) -> None:
        self.calls.append(args)
        self.conn.unblocked.set()


def decode(member: bytes) -> tuple[dict[str, Any], Any]:
    message = msgpack.unpackb(member)
    return message, message.pop("__asgi_channel__", None)


class FakeBlocking:
    def __init__(self) -> None:
        self.connection_pool = FakePool()


async def test_stopping_mid_pop_unblocks_and_keeps_the_messages() -> None:
    stats = LayerStats()
    buffers = LocalBuffers(lambda c: 10, 60, stats)
    blocking = FakeBlocking()
    commands = FakeCommands(blocking.connection_pool.conn)
    drainer = Drainer(
        blocking,  # type: ignore[arg-type]
        commands,  # type: ignore[arg-type]
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
    assert commands.calls == [("CLIENT", "UNBLOCK", 7)]
    assert await buffers.get("specific.x!a") == {"n": 1}
    assert blocking.connection_pool.released == 1
