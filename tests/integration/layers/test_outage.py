"""Redis going away and coming back: sends fail fast, receives wait, both recover."""

from __future__ import annotations

import asyncio
import time

import pytest

from servicebus.layers import RedisChannelLayer, RedisUnavailable
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis


async def test_send_fails_fast_while_down_and_recovers(private_redis: RedisServer) -> None:
    layer = RedisChannelLayer(hosts=[private_redis.url], block_timeout=0.5)
    try:
        await layer.send("svc", {"n": 0})
        assert await layer.receive("svc") == {"n": 0}
        blocked = asyncio.ensure_future(layer.receive("waiting"))
        reply = await layer.new_channel()
        blocked_local = asyncio.ensure_future(layer.receive(reply))
        await asyncio.sleep(0.1)

        private_redis.stop()
        started = time.monotonic()
        with pytest.raises(RedisUnavailable):
            await layer.send("svc", {"n": 1})
        assert time.monotonic() - started < 3
        await asyncio.sleep(1.0)  # receivers retry meanwhile, they do not crash
        assert not blocked.done()
        assert not blocked_local.done()

        private_redis.start()  # same port, empty: the script cache is gone too
        await layer.send("svc", {"n": 2})
        assert await layer.receive("svc") == {"n": 2}
        await layer.send("waiting", {"n": 3})
        await layer.send(reply, {"n": 4})
        assert await asyncio.wait_for(blocked, 10) == {"n": 3}
        assert await asyncio.wait_for(blocked_local, 10) == {"n": 4}
    finally:
        await layer.close()


async def test_unreachable_redis_raises_promptly() -> None:
    layer = RedisChannelLayer(hosts=[f"redis://127.0.0.1:{free_port()}/0"])
    started = time.monotonic()
    with pytest.raises(RedisUnavailable):
        await layer.send("svc", {})
    # A receive keeps retrying until its timeout instead of crashing.
    assert await layer.receive_many("svc", 1, timeout=0.5) == []
    assert time.monotonic() - started < 5
    await layer.close()
