"""A consumer process for the at-most-once test on a cluster: prints every id it got.

Usage: python consumer.py CONFIG_JSON CHANNEL[,CHANNEL...] IDLE_SECONDS
Takes from the channels in turn; stops after IDLE_SECONDS without a message on any
(bounded: at most 60 s in all).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from servicebus.layers import RedisChannelLayer


async def main(config: str, channels: list[str], idle: float) -> None:
    layer = RedisChannelLayer(**json.loads(config), block_timeout=0.1)
    ids: list[str] = []
    started = time.monotonic()
    quiet_since = time.monotonic()
    print("ready", flush=True)
    turn = 0
    while time.monotonic() - started < 60:
        channel = channels[turn % len(channels)]
        turn += 1
        # Mix batch and single receives, like a worker does.
        batch = await layer.receive_many(channel, 1 + len(ids) % 7, timeout=0.1)
        if batch:
            ids.extend(str(m["id"]) for m in batch)
            quiet_since = time.monotonic()
        elif ids and time.monotonic() - quiet_since > idle:
            break
    await layer.close()
    print(" ".join(ids), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2].split(","), float(sys.argv[3])))
