"""The layer's fast msgpack path writes and reads exactly channels_redis's format."""

from __future__ import annotations

import threading

import msgpack
from channels_redis.core import RedisChannelLayer as StockLayer

from servicebus.layers.core import RedisChannelLayer


def test_fast_serialize_is_stock_format() -> None:
    layer = RedisChannelLayer()
    stock = StockLayer()
    message = {"type": "x", "body": b"\x00\xff", "n": [1, 2.5, None], "s": "é"}
    data = layer.serialize(message)
    assert layer._codec.fast
    assert len(data) == 12 + len(msgpack.packb(message))
    assert data[12:] == msgpack.packb(message)
    assert stock.deserialize(data) == message
    assert layer.deserialize(stock.serialize(message)) == message
    assert layer.serialize(message)[:12] != data[:12]  # a fresh random prefix each time


def test_encrypted_layer_keeps_stock_path() -> None:
    layer = RedisChannelLayer(symmetric_encryption_keys=["k"])
    assert not layer._codec.fast
    assert StockLayer(symmetric_encryption_keys=["k"]).deserialize(layer.serialize({"a": 1})) == {
        "a": 1
    }
    stock = StockLayer(symmetric_encryption_keys=["k"])
    assert layer.deserialize(stock.serialize({"b": 2})) == {"b": 2}


def test_json_format_and_prefix_length_are_honoured() -> None:
    layer = RedisChannelLayer(serializer_format="json", random_prefix_length=4)
    stock = StockLayer(serializer_format="json", random_prefix_length=4)
    assert stock.deserialize(layer.serialize({"j": [1]})) == {"j": [1]}
    assert layer.deserialize(stock.serialize({"j": [2]})) == {"j": [2]}


def test_a_large_member_comes_in_two_pieces_of_the_same_bytes() -> None:
    layer = RedisChannelLayer()
    message = {"body": b"\x01" * 200_000}
    small = layer._codec.member({"body": b"x"})
    assert isinstance(small, bytes)
    assert layer.deserialize(small) == {"body": b"x"}
    prefix, payload = layer._codec.member(message)
    assert len(prefix) == 12
    assert StockLayer().deserialize(prefix + payload) == message


def test_each_thread_packs_with_a_packer_of_its_own() -> None:
    layer = RedisChannelLayer()
    packers = layer._codec._packers
    mine = packers.packer
    seen: list[object] = []
    results: list[bytes] = []

    def other() -> None:
        seen.append(packers.packer)
        results.append(layer.serialize({"from": "thread"}))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(10)
    assert seen and seen[0] is not mine and packers.packer is mine
    assert layer.deserialize(results[0]) == {"from": "thread"}
    assert layer.deserialize(layer.serialize({"from": "main"})) == {"from": "main"}
