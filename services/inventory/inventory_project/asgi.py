"""ASGI application: the inventory service on its request channel (``runworker``)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_project.settings")

import django

django.setup()

from channels.routing import ChannelNameRouter, ProtocolTypeRouter  # noqa: E402
from inventory.service import inventory  # noqa: E402

application = ProtocolTypeRouter(
    {"channel": ChannelNameRouter({inventory.channel: inventory.as_consumer()})}
)
