"""Routing for the test worker: every test service on its request channel."""

from channels.routing import ChannelNameRouter, ProtocolTypeRouter

from tests.project.services import chain_a, chain_b, chain_c, misc

application = ProtocolTypeRouter(
    {
        "channel": ChannelNameRouter(
            {svc.channel: svc.as_consumer() for svc in (chain_a, chain_b, chain_c, misc)}
        )
    }
)
