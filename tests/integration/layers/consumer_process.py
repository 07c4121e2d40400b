"""A consumer process for the at-most-once test: prints every message id it receives.

Usage: python consumer_process.py REDIS_URL CHANNEL IDLE_SECONDS
Stops after IDLE_SECONDS without a message (bounded: at most 60 s in all).
"""

from __future__ import annotations

import asyncio
import sys
import time

from servicebus.layers import RedisChannelLayer


async def main(url: str, channel: str, idle: float) -> None:
    layer = RedisChannelLayer(hosts=[url], capacity=10_000, block_timeout=0.2)
    ids: list[str] = []
    started = time.monotonic()
    print("ready", flush=True)
    while time.monotonic() - started < 60:
        # Mix batch and single receives, like a worker does.
        batch = await layer.receive_many(channel, 1 + len(ids) % 7, timeout=idle)
        if not batch:
            if ids:
                break
            continue
        ids.extend(str(m["id"]) for m in batch)
    await layer.close()
    print(" ".join(ids), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
