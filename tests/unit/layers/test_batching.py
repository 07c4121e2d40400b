"""SendCoalescer: one script call per tick and per batch cap, statuses routed back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from servicebus.layers.batching import SendCoalescer
from servicebus.layers.stats import LayerStats


def parse_resp(packed: bytes) -> tuple[Any, ...]:
    """The arguments of one RESP array of bulk strings (test members have no CRLF)."""
    lines = packed.split(b"\r\n")
    count = int(lines[0][1:])
    items = lines[2::2][:count]
    return (items[0].decode(), items[1].decode(), int(items[2]), *items[3:])


class FakeRedis:
    """Records EVALSHA calls; every message whose member starts with b'full' is refused.

    It is its own pool and connection, the way LuaScript talks to redis-py.
    """

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.error = error
        self.connection_pool = self

    async def get_connection(self) -> FakeRedis:
        return self

    async def release(self, conn: FakeRedis) -> None:
        pass

    async def send_packed_command(self, packed: bytes, check_health: bool = True) -> None:
        self.calls.append(parse_resp(packed))

    async def read_response(self) -> list[int]:
        if self.error is not None:
            raise self.error
        args = self.calls[-1]
        nkeys = args[2]
        members = args[3 + nkeys + 2 :: 3]
        return [0 if m.startswith(b"full") else 1 for m in members]


def _coalescer(client: FakeRedis, max_batch: int = 64) -> SendCoalescer:
    return SendCoalescer(
        client,  # type: ignore[arg-type]
        asyncio.get_running_loop(),
        expiry=60,
        max_batch=max_batch,
        stats=LayerStats(),
    )


async def test_one_tick_is_one_call_per_batch() -> None:
    client = FakeRedis()
    coalescer = _coalescer(client, max_batch=64)
    futures = [coalescer.submit("asgik", b"m%d" % i, 100) for i in range(200)]
    assert await asyncio.gather(*futures) == [1] * 200
    assert [call[2] for call in client.calls] == [64, 64, 64, 8]
    assert all(call[0] == "EVALSHA" for call in client.calls)


async def test_statuses_go_to_their_own_sender() -> None:
    coalescer = _coalescer(FakeRedis())
    ok = coalescer.submit("asgia", b"ok", 10)
    full = coalescer.submit("asgib", b"full", 10)
    assert (await ok, await full) == (1, 0)


async def test_scores_increase_in_submit_order() -> None:
    client = FakeRedis()
    coalescer = _coalescer(client, max_batch=4)
    await asyncio.gather(*(coalescer.submit("asgik", b"m", 1) for _ in range(10)))
    await asyncio.gather(*(coalescer.submit("asgik", b"m", 1) for _ in range(3)))
    scores = [float(s) for call in client.calls for s in call[3 + call[2] + 2 + 2 :: 3]]
    assert len(scores) == 13
    assert scores == sorted(scores)
    assert len(set(scores)) == 13


async def test_errors_reach_every_sender_of_the_batch() -> None:
    coalescer = _coalescer(FakeRedis(error=ConnectionError("down")))
    futures = [coalescer.submit("asgik", b"m", 1) for _ in range(3)]
    for future in futures:
        with pytest.raises(ConnectionError):
            await future


async def test_separate_ticks_are_separate_calls() -> None:
    client = FakeRedis()
    coalescer = _coalescer(client)
    await coalescer.submit("asgik", b"a", 1)
    await coalescer.submit("asgik", b"b", 1)
    assert len(client.calls) == 2
    await coalescer.aclose()
