"""The benchmark's echo service."""

from typing import Any

from channels.routing import ChannelNameRouter, ProtocolTypeRouter

from servicebus import Request, Service

bench = Service("bench")


@bench.method()
async def echo(request: Request) -> Any:
    """Return the body unchanged."""
    return request.body


application = ProtocolTypeRouter(
    {"channel": ChannelNameRouter({bench.channel: bench.as_consumer()})}
)
