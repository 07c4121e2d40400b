"""The layer's fast msgpack path writes exactly channels_redis's format."""

from __future__ import annotations

import msgpack
from channels_redis.core import RedisChannelLayer as StockLayer

from servicebus.layers.core import RedisChannelLayer


def test_fast_serialize_is_stock_format() -> None:
    layer = RedisChannelLayer()
    stock = StockLayer()
    message = {"type": "x", "body": b"\x00\xff", "n": [1, 2.5, None], "s": "é"}
    data = layer.serialize(message)
    assert layer._fast_msgpack
    assert len(data) == 12 + len(msgpack.packb(message))
    assert data[12:] == msgpack.packb(message)
    assert stock.deserialize(data) == message
    assert layer.deserialize(stock.serialize(message)) == message
    assert layer.serialize(message)[:12] != data[:12]  # a fresh random prefix each time


def test_encrypted_layer_keeps_stock_path() -> None:
    layer = RedisChannelLayer(symmetric_encryption_keys=["k"])
    assert not layer._fast_msgpack
    assert StockLayer(symmetric_encryption_keys=["k"]).deserialize(layer.serialize({"a": 1})) == {
        "a": 1
    }
