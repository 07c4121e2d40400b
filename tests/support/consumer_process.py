"""A consumer process for the at-most-once tests: prints every id it got (tests.support.consumers).

Usage: python consumer_process.py CONFIG_JSON CHANNEL[,CHANNEL...] IDLE_SECONDS
CONFIG_JSON: the layer's CONFIG (block_timeout 0.1 unless it says). Takes from the
channels in turn; stops after IDLE_SECONDS without a message on any, once it got one
(bounded: at most 60 s in all).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from servicebus.layers import RedisChannelLayer


async def main(config: str, channels: list[str], idle: float) -> None:
    layer = RedisChannelLayer(**{"block_timeout": 0.1, **json.loads(config)})
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
