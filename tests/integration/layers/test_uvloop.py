"""The layer on uvloop (used automatically by runworker when installed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from servicebus.layers import RedisChannelLayer
from tests.support.redis_server import RedisServer

uvloop = pytest.importorskip("uvloop")

pytestmark = pytest.mark.redis


async def _round_trips(layer: RedisChannelLayer) -> None:
    await layer.check()
    await asyncio.gather(*(layer.send("uv.request", {"i": i}) for i in range(100)))
    got = []
    while len(got) < 100:
        got += await layer.receive_many("uv.request", 64, timeout=2)
    assert sorted(m["i"] for m in got) == list(range(100))
    reply = await layer.new_channel()
    await layer.send(reply, {"reply": 1})
    assert await asyncio.wait_for(layer.receive(reply), 5) == {"reply": 1}
    await layer.close()


def test_plain_and_local_channels_on_uvloop(redis_flushed: str) -> None:
    uvloop.run(_round_trips(RedisChannelLayer(hosts=[redis_flushed])))


def test_tls_on_uvloop(tls_redis: tuple[RedisServer, Path]) -> None:
    server, cert = tls_redis
    host = {"address": f"rediss://127.0.0.1:{server.port}/0", "ssl_ca_certs": str(cert)}
    uvloop.run(_round_trips(RedisChannelLayer(hosts=[host])))
