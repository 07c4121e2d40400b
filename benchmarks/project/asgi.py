"""The benchmark's service: ``echo``, and ``record`` that counts executions per request id."""

import os
from typing import Any

from channels.routing import ChannelNameRouter, ProtocolTypeRouter

from servicebus import Request, Service

bench = Service("bench")
_redis: Any = None


@bench.method()
async def echo(request: Request) -> Any:
    """Return the body unchanged."""
    return request.body


@bench.method()
async def record(request: Request) -> int:
    """Count this execution under the request's id; return this worker's pid."""
    global _redis
    if _redis is None:
        from redis import asyncio as aioredis

        _redis = aioredis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    await _redis.hincrby("bench:executions", request.body, 1)
    return os.getpid()


application = ProtocolTypeRouter(
    {"channel": ChannelNameRouter({bench.channel: bench.as_consumer()})}
)
