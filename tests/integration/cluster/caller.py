"""A caller process for the sharding test: its reply key sits on a chosen shard.

Usage: python caller.py CONFIG_JSON CHANNEL[,CHANNEL...] SHARD CALLS INFLIGHT KEY_PREFIX
Prints one JSON line: {"shard": n, "ok": [keys], "errors": {key: error class}}.
Bounded: every call has a 10 s timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import django
from django.conf import settings


def configure(config: dict[str, object]) -> None:
    settings.configure(
        INSTALLED_APPS=["servicebus", "channels"],
        CHANNEL_LAYERS={
            "default": {"BACKEND": "servicebus.layers.RedisChannelLayer", "CONFIG": config}
        },
        SERVICEBUS={"SERVICE_NAME": f"caller-{os.getpid()}"},
        USE_TZ=True,
    )
    django.setup()


async def main(channels: list[str], shard: int, calls: int, inflight: int, prefix: str) -> None:
    from channels.layers import channel_layers

    import servicebus
    from servicebus.conf import REPLY_CHANNEL_PREFIX

    # A layer whose process key ("<prefix>.<client>!") hashes to the chosen shard.
    for _ in range(1000):
        layer = channel_layers.make_backend("default")
        if layer.consistent_hash(f"{REPLY_CHANNEL_PREFIX}.{layer.client_prefix}!") == shard:
            break
    else:
        raise RuntimeError(f"no client prefix on shard {shard}")
    channel_layers.backends["default"] = layer
    ok: list[str] = []
    errors: dict[str, str] = {}
    keys = iter(range(calls))

    async def loop() -> None:
        for i in keys:
            key = f"{prefix}-{i}"
            channel = channels[i % len(channels)]
            try:
                reply = await servicebus.acall(channel, "record", key, timeout=10)
            except Exception as exc:
                errors[key] = type(exc).__name__
            else:
                if reply.get("key") == key:
                    ok.append(key)
                else:
                    errors[key] = "misrouted"

    await asyncio.gather(*(loop() for _ in range(inflight)))
    print(json.dumps({"shard": shard, "ok": ok, "errors": errors}), flush=True)


if __name__ == "__main__":
    configure(json.loads(sys.argv[1]))
    channels, shard, calls, inflight, prefix = sys.argv[2:7]
    asyncio.run(main(channels.split(","), int(shard), int(calls), int(inflight), prefix))
