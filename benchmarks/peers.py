"""Peer workers for the benchmark, run as separate processes.

``python -m benchmarks.peers stock URL``: hand-rolled RPC on the stock channels_redis
layer, the way teams write it today (receive, handle in a task, reply on the caller's
channel). ``python -m benchmarks.peers nats URL``: a nats-py responder.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

STOCK_CHANNEL = "benchstock.request"
NATS_SUBJECT = "bench.echo"
# redis-py's asyncio pool raises (does not wait) past max_connections (default 100). Each
# send in progress holds a connection (an idle receive does not: channels_redis receives
# on process-local channels through one shared loop), so a user running 256 calls at once
# sizes the pool for that, as here.
STOCK_MAX_CONNECTIONS = 512


def stock_layer(url: str) -> Any:
    """A stock channels_redis layer with room for the deepest benchmark queue."""
    from channels_redis.core import RedisChannelLayer

    return RedisChannelLayer(
        hosts=[{"address": url, "max_connections": STOCK_MAX_CONNECTIONS}], capacity=2000
    )


async def serve_stock(url: str) -> None:
    """Answer echo requests on the stock layer until killed."""
    import redis.exceptions

    layer = stock_layer(url)
    tasks: set[asyncio.Task[None]] = set()

    async def reply(message: dict[str, Any]) -> None:
        await layer.send(message["reply"], {"type": "echo.reply", "body": message["body"]})

    print("ready", flush=True)
    while True:
        try:
            message = await layer.receive(STOCK_CHANNEL)
        except redis.exceptions.TimeoutError:
            # channels_redis 4.3 + redis-py 8: an idle receive raises after 5 s (its
            # blocking-pop timeout equals the socket timeout); teams wrap it like this.
            continue
        task = asyncio.create_task(reply(message))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def serve_nats(url: str) -> None:
    """Answer echo requests over NATS until killed."""
    import nats

    nc = await nats.connect(url)

    async def handler(msg: Any) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(NATS_SUBJECT, cb=handler)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    kind, url = sys.argv[1], sys.argv[2]
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    run(serve_stock(url) if kind == "stock" else serve_nats(url))


if __name__ == "__main__":
    main()
