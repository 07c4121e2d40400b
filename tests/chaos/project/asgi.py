"""The chaos suite's service: ``record`` writes each key it runs to a file, plus helpers."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from channels.layers import get_channel_layer
from channels.routing import ChannelNameRouter, ProtocolTypeRouter

from servicebus import Request, Service
from servicebus.metrics import metrics
from tests.support.load import KeyRecord

chaos = Service("chaos")
NAME = os.environ.get("CHAOS_WORKER_NAME", "chaos")
_record = KeyRecord("CHAOS_RECORD_DIR", NAME)


@chaos.method()
async def record(request: Request) -> dict[str, Any]:
    """Record the key (body: key, or {"key", "delay": seconds first}); answer key and worker."""
    body = request.body
    key, delay = (body["key"], float(body.get("delay", 0))) if isinstance(body, dict) else (body, 0)
    if delay:
        await asyncio.sleep(delay)
    _record(key)
    return {"key": key, "worker": NAME}


@chaos.method()
async def echo(request: Request) -> Any:
    """Return the body unchanged."""
    return request.body


@chaos.method()
async def echo_slow(request: Request) -> Any:
    """Return the body after 20 ms: a worker slower than its callers."""
    await asyncio.sleep(0.02)
    return request.body


@chaos.method()
async def sleep(request: Request) -> float:
    """Sleep ``body`` seconds."""
    await asyncio.sleep(float(request.body))
    return float(request.body)


@chaos.method()
async def reply_to(request: Request) -> str | None:
    """The caller's reply channel (the tests write garbage into its key)."""
    return request.reply_to


@chaos.method()
async def stats(request: Request) -> dict[str, Any]:
    """This process's servicebus counters and its layer's counters."""
    layer_stats = getattr(get_channel_layer(), "stats", {})
    return {"metrics": metrics.snapshot(), "layer": {k: int(v) for k, v in layer_stats.items()}}


application = ProtocolTypeRouter(
    {"channel": ChannelNameRouter({chaos.channel: chaos.as_consumer()})}
)
