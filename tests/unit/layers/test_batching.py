"""SendCoalescer: one script call per tick and per batch cap, statuses routed back."""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
import pytest
from channels.exceptions import ChannelFull

from servicebus.layers.batching import DIRECT_MIN, SendCoalescer
from servicebus.layers.errors import (
    RedisCommandError,
    RedisNoScriptError,
    RedisRoleChanged,
    RedisUnavailable,
)
from servicebus.layers.stats import LayerStats


def parse_resp(data: Any) -> list[bytes]:
    """The arguments of one packed command (bytes or pieces)."""
    return parse_all(data)[0]


def parse_all(data: Any) -> list[list[bytes]]:
    """Every command of a write (bytes or pieces)."""
    reader = hiredis.Reader()
    reader.feed(data if isinstance(data, bytes) else b"".join(data))
    commands = []
    while (command := reader.gets()) is not False:
        commands.append(command)
    return commands


class FakeClient:
    """Answers EVALSHA/EVAL like SEND_MANY; a member starting with b'full' is refused."""

    def __init__(
        self,
        error: Exception | None = None,
        noscript: int = 0,
        readonly: int = 0,
        execabort: int = 0,
    ) -> None:
        self.execabort = execabort
        self.calls: list[list[bytes]] = []
        self.transactions: list[list[list[bytes]]] = []  # every MULTI ... EXEC, whole
        self.error = error
        self.noscript = noscript
        self.readonly = readonly

    def submit(self, data: Any, replies: int = 1) -> asyncio.Future[Any]:
        commands = parse_all(data)
        assert len(commands) == replies
        args = commands[0]
        self.calls.append(args)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.error is not None:
            future.set_exception(self.error)
        elif self.readonly:
            self.readonly -= 1
            future.set_exception(RedisRoleChanged("READONLY You can't write against a replica."))
        elif args[0] == b"MULTI" and self.execabort:
            self.execabort -= 1
            future.set_exception(
                RedisCommandError("EXECABORT Transaction discarded because of previous errors.")
            )
        elif args[0] == b"MULTI":
            # [ZREMRANGEBYSCORE, ZADD, ZCOUNT, EXPIRE]: a member starting with b"full"
            # finds the channel over capacity (ZCOUNT one past any capacity).
            self.calls[-1] = commands[2]  # the ZADD
            self.transactions.append(commands)
            full = commands[2][3].startswith(b"full")
            future.set_result([0, 1, 10**9 if full else 1, 1])
        elif args[0] == b"ZREM":
            future.set_result(1)
        elif args[0] == b"EVALSHA" and self.noscript:
            self.noscript -= 1
            future.set_exception(RedisNoScriptError("NOSCRIPT No matching script"))
        else:
            nkeys = int(args[2])
            members = args[3 + nkeys + 2 :: 3]
            future.set_result([0 if m.startswith(b"full") else 1 for m in members])
        return future


def _coalescer(client: FakeClient, max_batch: int = 64) -> tuple[SendCoalescer, LayerStats]:
    stats = LayerStats()
    coalescer = SendCoalescer(
        client,  # type: ignore[arg-type]
        asyncio.get_running_loop(),
        expiry=60,
        max_batch=max_batch,
        stats=stats,
    )
    return coalescer, stats


async def test_one_tick_is_one_call_per_batch() -> None:
    client = FakeClient()
    coalescer, stats = _coalescer(client, max_batch=64)
    futures = [coalescer.submit("asgik", b"m%d" % i, 100, "k") for i in range(200)]
    assert await asyncio.gather(*futures) == [None] * 200
    assert [int(call[2]) for call in client.calls] == [64, 64, 64, 8]
    assert all(call[0] == b"EVALSHA" for call in client.calls)
    assert stats["script_calls"] == 4


async def test_statuses_go_to_their_own_sender() -> None:
    coalescer, stats = _coalescer(FakeClient())
    ok = coalescer.submit("asgia", b"ok", 10, "a")
    full = coalescer.submit("asgib", b"full", 10, "b")
    assert await ok is None
    with pytest.raises(ChannelFull, match="b"):
        await full
    assert stats["channel_full"] == 1


async def test_scores_increase_in_submit_order() -> None:
    client = FakeClient()
    coalescer, _ = _coalescer(client, max_batch=4)
    await asyncio.gather(*(coalescer.submit("asgik", b"m", 1, "k") for _ in range(10)))
    await asyncio.gather(*(coalescer.submit("asgik", b"m", 1, "k") for _ in range(3)))
    scores = [float(s) for call in client.calls for s in call[3 + int(call[2]) + 2 + 2 :: 3]]
    assert len(scores) == 13
    assert scores == sorted(scores)
    assert len(set(scores)) == 13


async def test_errors_reach_every_sender_of_the_batch() -> None:
    coalescer, _ = _coalescer(FakeClient(error=RedisUnavailable("down")))
    futures = [coalescer.submit("asgik", b"m", 1, "k") for _ in range(3)]
    for future in futures:
        with pytest.raises(RedisUnavailable):
            await future


async def test_noscript_falls_back_to_eval_once() -> None:
    client = FakeClient(noscript=2)
    coalescer, _ = _coalescer(client, max_batch=2)
    futures = [coalescer.submit("asgik", b"m", 5, "k") for _ in range(3)]
    assert await asyncio.gather(*futures) == [None] * 3
    assert [call[0] for call in client.calls] == [b"EVALSHA", b"EVALSHA", b"EVAL", b"EVAL"]


async def test_a_demoted_master_gets_the_batch_once_more() -> None:
    # READONLY: the script wrote nothing; the retired connection's successor (Sentinel
    # names the new master) takes the same batch. Twice READONLY: the senders see it.
    client = FakeClient(readonly=1)
    coalescer, _ = _coalescer(client)
    futures = [coalescer.submit("asgik", b"m", 5, "k") for _ in range(3)]
    assert await asyncio.gather(*futures) == [None] * 3
    assert len(client.calls) == 2
    again = FakeClient(readonly=2)
    coalescer, _ = _coalescer(again)
    with pytest.raises(RedisRoleChanged):
        await coalescer.submit("asgik", b"m", 5, "k")
    assert len(again.calls) == 2


async def test_separate_ticks_are_separate_calls() -> None:
    client = FakeClient()
    coalescer, _ = _coalescer(client)
    await coalescer.submit("asgik", b"a", 1, "k")
    await coalescer.submit("asgik", b"b", 1, "k")
    assert len(client.calls) == 2
    await coalescer.aclose()


async def test_small_messages_share_calls_up_to_a_byte_cap() -> None:
    client = FakeClient()
    coalescer, _ = _coalescer(client, max_batch=64)
    mid = b"m" * 4000  # under DIRECT_MIN: still a script argument
    futures = [coalescer.submit("asgik", mid, 10, "k") for _ in range(70)]
    assert await asyncio.gather(*futures) == [None] * 70
    # At most 256 KiB of members per call (64 of 4,000 B), and max_batch.
    assert [int(call[2]) for call in client.calls] == [64, 6]


async def test_large_messages_are_added_without_a_script_in_order() -> None:
    client = FakeClient()
    coalescer, stats = _coalescer(client, max_batch=64)
    big = b"b" * (300 * 1024)
    sends = (b"s1", big, b"s2", big, b"s3")
    futures = [coalescer.submit("asgik", m, 10, "k") for m in sends]
    futures.append(coalescer.submit("asgik", (b"p" * 12, big), 10, "k"))  # Codec.member pieces
    assert await asyncio.gather(*futures) == [None] * 6
    assert [call[0] for call in client.calls] == [b"EVALSHA", b"ZADD"] * 2 + [b"EVALSHA", b"ZADD"]
    assert client.calls[-1][3] == b"p" * 12 + big  # one bulk string, sent as two pieces
    scores = [float(call[2]) for call in client.calls if call[0] == b"ZADD"]
    assert scores == sorted(scores)
    # Capacity is checked on the messages no newer than the one added (ZCOUNT up to its
    # score), not on the whole key: a later message of the same burst never counts.
    counts = [t[3] for t in client.transactions]
    assert counts == [[b"ZCOUNT", b"asgik", b"-inf", zadd[2]] for zadd in client.calls
                      if zadd[0] == b"ZADD"]  # fmt: skip
    assert stats["direct_sends"] == 3 and stats["script_calls"] == 3


async def test_a_large_message_over_capacity_is_taken_back() -> None:
    client = FakeClient()
    coalescer, stats = _coalescer(client)
    told: list[BaseException | None] = []
    coalescer.submit_with("asgik", b"full" + b"x" * DIRECT_MIN, 10, "k", told.append)
    future = coalescer.submit("asgik", b"full" + b"y" * DIRECT_MIN, 10, "k")
    with pytest.raises(ChannelFull):
        await future
    await asyncio.sleep(0)
    assert len(told) == 1 and isinstance(told[0], ChannelFull)
    assert [call[0] for call in client.calls].count(b"ZREM") == 2
    assert stats["channel_full"] == 2


async def test_callback_senders_are_told_when_redis_answered_without_futures() -> None:
    coalescer, stats = _coalescer(FakeClient())
    told: list[tuple[str, BaseException | None]] = []

    def broken(error: BaseException | None) -> None:
        raise RuntimeError("a sender's callback failed")

    coalescer.submit_with("asgia", b"ok", 10, "a", lambda e: told.append(("a", e)))
    coalescer.submit_with("asgia", b"x", 10, "a", broken)  # must not cost its neighbours
    coalescer.submit_with("asgib", b"full", 10, "b", lambda e: told.append(("b", e)))
    future = coalescer.submit("asgic", b"ok", 10, "c")  # futures and callbacks mix
    assert await future is None
    await asyncio.sleep(0)
    assert [name for name, _ in told] == ["a", "b"]
    assert told[0][1] is None
    assert isinstance(told[1][1], ChannelFull)
    assert stats["channel_full"] == 1


async def test_callback_senders_get_the_batch_error() -> None:
    coalescer, _ = _coalescer(FakeClient(error=RedisUnavailable("down")))
    told: list[BaseException | None] = []
    coalescer.submit_with("asgik", b"m", 1, "k", told.append)
    coalescer.submit_with("asgik", b"m", 1, "k", told.append)
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(told) == 2
    assert all(isinstance(e, RedisUnavailable) for e in told)


async def test_a_large_message_whose_transaction_was_refused_goes_by_the_script() -> None:
    # EXECABORT (a queued command got MOVED or READONLY): nothing ran; the script path,
    # which follows redirections and failovers, sends it.
    client = FakeClient(execabort=1)
    coalescer, stats = _coalescer(client)
    assert await coalescer.submit("asgik", b"b" * DIRECT_MIN, 10, "k") is None
    assert [call[0] for call in client.calls] == [b"MULTI", b"EVALSHA"]
    assert stats["direct_sends"] == 1 and stats["script_calls"] == 1


async def test_a_cancelled_batch_cancels_its_futures_and_tells_its_callbacks() -> None:
    class Cancelling(FakeClient):
        def submit(self, data: Any, replies: int = 1) -> asyncio.Future[Any]:
            super().submit(data, replies)  # records the call
            cancelled: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            cancelled.cancel()  # the connection closed under the call
            return cancelled

    coalescer, _ = _coalescer(Cancelling())
    told: list[BaseException | None] = []
    future = coalescer.submit("asgik", b"m", 1, "k")
    coalescer.submit_with("asgik", b"m", 1, "k", told.append)
    for _ in range(3):
        await asyncio.sleep(0)
    assert future.cancelled()
    assert len(told) == 1 and isinstance(told[0], asyncio.CancelledError)
