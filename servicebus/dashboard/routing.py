"""The dashboard's WebSocket route, for the project's ASGI ``ProtocolTypeRouter``.

application = ProtocolTypeRouter({
    "http": get_asgi_application(),
    "websocket": AllowedHostsOriginValidator(
        AuthMiddlewareStack(URLRouter(websocket_urlpatterns("bus/")))
    ),
})
"""

from __future__ import annotations

from typing import Any

from django.urls import path

from servicebus.dashboard.consumers import DashboardConsumer


def websocket_urlpatterns(prefix: str = "bus/") -> list[Any]:
    """The consumer at ``<prefix>ws``: the prefix is the one the dashboard's URLs use."""
    prefix = prefix.strip("/")
    return [path(f"{prefix}/ws" if prefix else "ws", DashboardConsumer.as_asgi())]
