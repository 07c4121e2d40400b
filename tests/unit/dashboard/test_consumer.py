"""The live WebSocket: staff only, pushes the live part of a page, survives an outage."""

from __future__ import annotations

from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from servicebus.dashboard.consumers import DashboardConsumer


class FastConsumer(DashboardConsumer):
    refresh = 0.05


def with_user(user: Any) -> Any:
    """The consumer as routed behind channels' AuthMiddlewareStack, with ``user`` logged in."""
    inner = FastConsumer.as_asgi()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await inner({**scope, "user": user}, receive, send)

    return app


async def open_socket(user: Any) -> tuple[WebsocketCommunicator, bool]:
    socket = WebsocketCommunicator(with_user(user), "/bus/ws")
    connected, _ = await socket.connect(timeout=5)
    return socket, connected


class User:
    def __init__(self, staff: bool, active: bool = True) -> None:
        self.is_authenticated = True
        self.is_active = active
        self.is_staff = staff


@pytest.mark.parametrize("user", [AnonymousUser(), User(staff=False), User(True, False), None])
async def test_handshake_refused_unless_staff(user: Any) -> None:
    socket, connected = await open_socket(user)
    assert not connected
    await socket.disconnect()


async def test_staff_gets_the_live_part_of_the_page(telemetry: Any) -> None:
    socket, connected = await open_socket(User(staff=True))
    assert connected
    await socket.send_json_to({"view": "overview", "args": {}})
    first = await socket.receive_json_from(timeout=5)
    assert first["ok"] is True and first["error"] is None
    assert 'data-service="orders"' in first["html"]
    assert 'href="/bus/services/orders"' in first["html"]  # links start at the mount
    # Unchanged figures are not sent again.
    second = await socket.receive_json_from(timeout=5)
    assert second["ok"] is True and second["html"] is None
    await socket.disconnect()


async def test_outage_is_reported_then_figures_come_back(telemetry: Any) -> None:
    socket, _ = await open_socket(User(staff=True))
    await socket.send_json_to({"view": "service", "args": {"name": "orders"}})
    assert (await socket.receive_json_from(timeout=5))["html"]
    telemetry.down = ConnectionError("Connection refused")
    message = await socket.receive_json_from(timeout=5)
    while message["ok"]:
        message = await socket.receive_json_from(timeout=5)
    assert message["html"] is None  # the page keeps its last figures, marked stale
    assert "Redis is unavailable" in message["error"]
    assert "Connection refused" in message["error"]
    telemetry.down = None
    message = await socket.receive_json_from(timeout=5)
    while not message["ok"]:
        message = await socket.receive_json_from(timeout=5)
    assert 'data-method="place"' in message["html"]  # sent again after the outage
    # Refreshes never ask the service for its _info (the page has the docs already).
    assert {args["ask"] for view, args in telemetry.calls} == {False}
    await socket.disconnect()


async def test_a_bug_in_a_read_is_logged_and_the_socket_stays(telemetry: Any, caplog) -> None:
    socket, _ = await open_socket(User(staff=True))
    telemetry.down = RuntimeError("a bug")
    await socket.send_json_to({"view": "failures", "args": {}})
    message = await socket.receive_json_from(timeout=5)
    assert message["ok"] is False and "could not read" in message["error"]
    telemetry.down = None
    message = await socket.receive_json_from(timeout=5)
    assert message["ok"] is True and 'data-code="card_declined"' in message["html"]
    assert "rendering failures failed" in caplog.text
    await socket.disconnect()


@pytest.mark.parametrize(
    "subscription",
    [
        {"view": "nope"},
        {"view": "service", "args": {}},
        {"view": "service", "args": {"name": 5}},
        {"view": "service", "args": {"name": "x" * 500}},
        {"view": "overview", "args": {"extra": "1"}},
        ["overview"],
    ],
)
async def test_bad_subscriptions_are_refused(telemetry: Any, subscription: Any) -> None:
    socket, _ = await open_socket(User(staff=True))
    await socket.send_json_to(subscription)
    message = await socket.receive_json_from(timeout=5)
    assert message == {"ok": False, "error": "unknown view or arguments"}
    assert telemetry.calls == []
    await socket.disconnect()


class BrokenLayer(InMemoryChannelLayer):
    """A channel layer whose Redis is down: every receive fails at once."""

    async def receive(self, channel: str) -> dict:
        raise ConnectionError("Connection closed by server.")


async def test_a_channel_layer_outage_does_not_close_the_page(telemetry: Any, settings) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "tests.unit.dashboard.test_consumer.BrokenLayer"}
    }
    socket, connected = await open_socket(User(staff=True))
    assert connected
    await socket.send_json_to({"view": "overview", "args": {}})
    for _ in range(3):
        assert (await socket.receive_json_from(timeout=5))["ok"] is True
    await socket.disconnect()
