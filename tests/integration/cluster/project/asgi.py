"""The scaling tests' services: ``record`` notes every key it runs, on any channel."""

from __future__ import annotations

import os
from typing import Any

from channels.routing import ChannelNameRouter, ProtocolTypeRouter

from servicebus import Request, Service
from tests.support.load import KeyRecord

NAME = os.environ.get("SCALE_WORKER_NAME", "scale")
CHANNELS = os.environ.get("SCALE_CHANNELS", "scale.request").split(",")
_record = KeyRecord("SCALE_RECORD_DIR", NAME)


def _service(channel: str) -> Service:
    service = Service(channel.removesuffix(".request"))

    @service.method()
    async def record(request: Request) -> dict[str, Any]:
        """Record the key (the body) and answer it with this worker's name."""
        _record(str(request.body))
        return {"key": request.body, "worker": NAME}

    @service.method()
    async def echo(request: Request) -> Any:
        """The body unchanged."""
        return request.body

    return service


application = ProtocolTypeRouter(
    {"channel": ChannelNameRouter({c: _service(c).as_consumer() for c in CHANNELS})}
)
