"""Wire compatibility with stock channels_redis, in both directions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from channels_redis.core import RedisChannelLayer as StockLayer

from servicebus.layers import RedisChannelLayer

pytestmark = pytest.mark.redis


@pytest.fixture
async def stock(redis_flushed: str) -> AsyncIterator[StockLayer]:
    layer = StockLayer(hosts=[redis_flushed])
    yield layer
    await layer.close_pools()


async def test_stock_sends_we_receive_normal(stock: StockLayer, layer: RedisChannelLayer) -> None:
    await stock.send("svc.request", {"from": "stock", "n": 1})
    assert await layer.receive("svc.request") == {"from": "stock", "n": 1}


async def test_we_send_stock_receives_normal(stock: StockLayer, layer: RedisChannelLayer) -> None:
    await layer.send("svc.request", {"from": "ours"})
    assert await asyncio.wait_for(stock.receive("svc.request"), 10) == {"from": "ours"}


async def test_stock_sends_to_our_local_channel(
    stock: StockLayer, layer: RedisChannelLayer
) -> None:
    reply = await layer.new_channel()
    await stock.send(reply, {"reply": "from stock"})
    assert await asyncio.wait_for(layer.receive(reply), 5) == {"reply": "from stock"}


async def test_we_send_to_stock_local_channel(stock: StockLayer, layer: RedisChannelLayer) -> None:
    reply = await stock.new_channel()
    await layer.send(reply, {"reply": "from ours"})
    assert await asyncio.wait_for(stock.receive(reply), 10) == {"reply": "from ours"}


async def test_stock_group_send_reaches_our_channels(
    stock: StockLayer, layer: RedisChannelLayer
) -> None:
    local = await layer.new_channel()
    await layer.group_add("g", local)
    await stock.group_add("g", "plain")
    await stock.group_send("g", {"event": 1})
    assert await asyncio.wait_for(layer.receive(local), 5) == {"event": 1}
    assert await layer.receive("plain") == {"event": 1}


async def test_big_messages_both_ways(stock: StockLayer, layer: RedisChannelLayer) -> None:
    # 1 MB: our writer sends prefix and payload as separate pieces of one bulk string.
    body = bytes(range(256)) * 4096
    await layer.send("big.request", {"body": body})
    assert await asyncio.wait_for(stock.receive("big.request"), 10) == {"body": body}
    await stock.send("big.request", {"body": body[::-1]})
    assert await layer.receive("big.request") == {"body": body[::-1]}
    reply = await layer.new_channel()
    await layer.send(reply, {"body": body})
    assert await asyncio.wait_for(layer.receive(reply), 10) == {"body": body}
