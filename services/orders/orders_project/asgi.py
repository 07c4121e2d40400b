"""ASGI application: the HTTP API and the bus dashboard (daphne), ``orders.request`` (runworker)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orders_project.settings")

from django.core.asgi import get_asgi_application

http_application = get_asgi_application()  # sets Django up before the app imports below

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from orders.service import orders  # noqa: E402

from servicebus.dashboard.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": http_application,
        # The dashboard's live figures (/bus/ws): staff sessions, same-origin pages only.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns("bus/")))
        ),
        "channel": ChannelNameRouter({orders.channel: orders.as_consumer()}),
    }
)
