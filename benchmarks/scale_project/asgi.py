"""One echo service per request channel of SCALE_BENCH_CHANNELS."""

import os
from typing import Any

from channels.routing import ChannelNameRouter, ProtocolTypeRouter

from servicebus import Request, Service


async def echo(request: Request) -> Any:
    """Return the body unchanged."""
    return request.body


def _service(channel: str) -> Service:
    service = Service(channel.removesuffix(".request"), channel=channel)
    service.method("echo")(echo)
    return service


_channels = os.environ.get("SCALE_BENCH_CHANNELS", "bench.request").split(",")
application = ProtocolTypeRouter(
    {"channel": ChannelNameRouter({c: _service(c).as_consumer() for c in _channels})}
)
