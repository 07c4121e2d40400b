"""ASGI application: the HTTP API (daphne) and ``orders.request`` (runworker)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orders_project.settings")

from django.core.asgi import get_asgi_application

http_application = get_asgi_application()  # sets Django up before the app imports below

from channels.routing import ChannelNameRouter, ProtocolTypeRouter  # noqa: E402
from orders.service import orders  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "channel": ChannelNameRouter({orders.channel: orders.as_consumer()}),
    }
)
