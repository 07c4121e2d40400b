"""The benchmark's service: ``echo``, and ``record`` that counts executions per request key."""

import os
from typing import Any

from channels.routing import ChannelNameRouter, ProtocolTypeRouter

from servicebus import Request, Service

# BENCH_CHANNEL: another request channel for the same service (benchmarks.telemetry runs
# one worker per telemetry mode side by side).
bench = Service("bench", channel=os.environ.get("BENCH_CHANNEL") or None)
_redis: Any = None


@bench.method()
async def echo(request: Request) -> Any:
    """Return the body unchanged."""
    return request.body


@bench.method()
async def record(request: Request) -> dict[str, Any]:
    """Count this execution under the request's key; answer with the key and this worker."""
    global _redis
    if _redis is None:
        from redis import asyncio as aioredis

        _redis = aioredis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    await _redis.hincrby("bench:executions", request.body, 1)
    # The key lets the caller catch a reply routed to the wrong call.
    return {"key": request.body, "worker": os.environ.get("BENCH_WORKER_NAME", str(os.getpid()))}


application = ProtocolTypeRouter(
    {"channel": ChannelNameRouter({bench.channel: bench.as_consumer()})}
)
