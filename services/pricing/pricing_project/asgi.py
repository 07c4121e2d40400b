"""ASGI application: the pricing service on its request channel (``runworker``)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_project.settings")

import django

django.setup()

from channels.routing import ChannelNameRouter, ProtocolTypeRouter  # noqa: E402
from pricing.service import pricing  # noqa: E402

application = ProtocolTypeRouter(
    {"channel": ChannelNameRouter({pricing.channel: pricing.as_consumer()})}
)
