"""Layer settings, per-shard clients, and the script helper."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from servicebus.layers import RedisChannelLayer
from servicebus.layers.connections import ShardClients
from servicebus.layers.errors import ForeignChannelError, RedisNoScriptError
from servicebus.layers.hosts import parse_host
from servicebus.layers.scripts import SEND_MANY, LuaScript


async def test_pop_margin_outlasts_small_socket_timeouts() -> None:
    loop = asyncio.get_running_loop()
    small = ShardClients(parse_host({"host": "h", "socket_timeout": 0.3}), loop, max_blocking=8)
    assert small.pop_margin == 1.0
    default = ShardClients(parse_host({"host": "h"}), loop, max_blocking=8)
    assert default.pop_margin == 5.0


class _NoScriptYet:
    """A Redis that just restarted: EVALSHA fails once with NOSCRIPT."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def submit(self, data: Any) -> asyncio.Future[Any]:
        name = data.split(b"\r\n")[2]
        self.calls.append(name)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if name == b"EVALSHA":
            future.set_exception(RedisNoScriptError("NOSCRIPT No matching script"))
        else:
            future.set_result(b"ran")
        return future


async def test_script_reloads_after_noscript() -> None:
    script = LuaScript("return 1")
    assert script.sha == hashlib.sha1(b"return 1").hexdigest()
    client = _NoScriptYet()
    assert await script(client, [], []) == b"ran"  # type: ignore[arg-type]
    assert client.calls == [b"EVALSHA", b"EVAL"]
    assert SEND_MANY.sha != script.sha


def test_layer_keeps_stock_config_and_extensions() -> None:
    layer = RedisChannelLayer(
        hosts=[("127.0.0.1", 1)],
        prefix="sb",
        expiry=30,
        capacity=7,
        channel_capacity={"a.*": 3},
        group_expiry=100,
        max_batch=32,
        max_connections=10,
    )
    assert layer.hosts == [{"host": "127.0.0.1", "port": 1}]
    assert (layer.prefix, layer.expiry, layer.capacity, layer.max_batch) == ("sb", 30, 7, 32)
    assert (layer.get_capacity("a.b"), layer.get_capacity("c"), layer.group_expiry) == (3, 7, 100)
    assert layer.extensions == ["groups", "flush"]
    with pytest.raises(ValueError, match="block_timeout"):
        RedisChannelLayer(block_timeout=0)
    with pytest.raises(ValueError, match="unsupported"):
        RedisChannelLayer(hosts=[{"host": "h", "sockettimeout": 1}])


def test_consistent_hash_is_channels_redis_ring() -> None:
    from channels_redis.core import RedisChannelLayer as StockLayer

    ours = RedisChannelLayer(hosts=["redis://a", "redis://b", "redis://c"])
    stock = StockLayer(hosts=["redis://a", "redis://b", "redis://c"])
    names = [f"svc{i}.request" for i in range(50)] + ["specific.abc!"]
    assert [ours.consistent_hash(n) for n in names] == [stock.consistent_hash(n) for n in names]


async def test_misuse_raises_the_stock_exception_types() -> None:
    layer = RedisChannelLayer()
    with pytest.raises(TypeError):
        await layer.send("bad name!?", {})
    with pytest.raises(TypeError):
        await layer.receive_many("bad name", 1)
    with pytest.raises(TypeError):
        await layer.group_add("bad group!", "x")
    with pytest.raises(AssertionError):
        await layer.send("ok", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        await layer.send("ok", {"__asgi_channel__": "x"})
    with pytest.raises(AssertionError):
        await layer.receive("specific.someoneelse!abc")
    with pytest.raises(ForeignChannelError):
        await layer.receive_many("specific.x!y", 3)
    # Nothing above opened a connection.
    assert all(not state.shards for state in layer._loops.values())


def test_reply_channels_have_their_own_capacity() -> None:
    layer = RedisChannelLayer(capacity=7, channel_capacity={"servicebus.reply.pinned*": 2})
    reply = "servicebus.reply.0123abcd!ef45"
    assert (layer.get_capacity(reply), layer.get_capacity("orders.request")) == (10_000, 7)
    assert layer.get_capacity("servicebus.reply.pinned!x") == 2  # a pattern still wins
    assert RedisChannelLayer(capacity=7, reply_capacity=50).get_capacity(reply) == 50
    # Never below the request capacity: a reply must not be refused sooner than a request.
    assert RedisChannelLayer(capacity=20_000).get_capacity(reply) == 20_000
    with pytest.raises(ValueError, match="reply_capacity"):
        RedisChannelLayer(reply_capacity=0)
    with pytest.raises(TypeError, match="reply_capacity"):
        RedisChannelLayer(reply_capacity="many")  # type: ignore[arg-type]
