"""The dashboard over real telemetry in a real Redis: registry, call records, outages.

The registry and the call stream are written by telemetry's own Heartbeat and
CallRecorder (fed by hand here; the e2e test has real workers write them).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from channels.layers import channel_layers
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import Client

from servicebus.dashboard import data
from servicebus.dashboard.consumers import DashboardConsumer
from servicebus.dashboard.routing import websocket_urlpatterns
from servicebus.telemetry import store as keys
from servicebus.telemetry.records import CallRecorder
from servicebus.telemetry.registry import Heartbeat
from servicebus.telemetry.stats import stats
from servicebus.telemetry.store import get_store
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@dataclass
class Call:
    """A handled call as telemetry hooks see it (servicebus.hooks.CallInfo's fields)."""

    service: str
    method: str
    correlation_id: str
    request_id: str
    parent_id: str | None = None
    code: str = "ok"
    duration: float = 0.01
    started: float = field(default_factory=time.time)
    kind: str = "server"
    channel: str = ""
    caller: str = "orders"
    headers: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


def use_redis(settings: Any, url: str) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "servicebus.layers.RedisChannelLayer", "CONFIG": {"hosts": [url]}}
    }
    channel_layers.backends.clear()
    data.clear_cache()


@pytest.fixture
def bus_redis(settings: Any, redis_flushed: str) -> Iterator[str]:
    use_redis(settings, redis_flushed)
    stats.reset()
    yield redis_flushed
    stats.reset()
    channel_layers.backends.clear()


def feed(services: dict[str, str], calls: list[Call] = (), maxlen: int = 2000) -> CallRecorder:
    """One heartbeat per service set, and the calls recorded, as a worker would."""

    async def run() -> CallRecorder:
        store = get_store()
        assert store is not None
        recorder = CallRecorder()
        recorder.configure(active=True, maxlen=maxlen)
        for call in calls:
            stats.server_start(call)
            stats.server_end(call)
            recorder.server_end(call)
        assert await Heartbeat(store, services, interval=30).beat()
        while recorder.buffer:
            await recorder.flush(store)
        return recorder

    return asyncio.run(run())


def saga(cid: str, declined: bool = False) -> list[Call]:
    t0 = time.time()
    calls = [Call("orders", "place", cid, "r0", started=t0, duration=0.08)]
    for i, (svc, method) in enumerate(
        [("inventory", "allocate"), ("pricing", "quote"), ("pricing", "charge")]
    ):
        code = "card_declined" if declined and method == "charge" else "ok"
        calls.append(Call(svc, method, cid, f"r{i + 1}", "r0", code, 0.01, t0 + 0.01 + 0.02 * i))
    return calls


def test_overview_lists_services_and_their_instances(bus_redis: str, staff_client: Client):
    feed({"inventory": "inventory.request", "pricing": "pricing.request"}, saga("a"))
    body = staff_client.get("/bus/api/overview").json()
    assert [s["name"] for s in body["services"]] == ["inventory", "pricing"]
    [instance] = body["services"][0]["instances"]
    assert instance["pid"] == os.getpid() and instance["stale"] is False
    html = staff_client.get("/bus/").content.decode()
    assert 'data-service="inventory"' in html and 'data-service="pricing"' in html
    assert f"<td>{os.getpid()}</td>" in html


def test_trace_by_correlation_id(bus_redis: str, staff_client: Client) -> None:
    feed({"pricing": "pricing.request"}, saga("order-17") + saga("other"))
    body = staff_client.get("/bus/api/traces/order-17").json()
    calls = [(c["service"], c["method"], c["depth"]) for c in body["calls"]]
    assert calls == [
        ("orders", "place", 0),
        ("inventory", "allocate", 1),
        ("pricing", "quote", 1),
        ("pricing", "charge", 1),
    ]
    html = staff_client.get("/bus/traces/", {"id": "order-17"}, follow=True).content.decode()
    assert html.count('<tr class="call') == 4
    assert '<td class="num duration">10 ms</td>' in html
    assert staff_client.get("/bus/api/traces/nothing-here").json()["calls"] == []


def test_failures_link_to_their_trace(bus_redis: str, staff_client: Client) -> None:
    feed({"pricing": "pricing.request"}, saga("ok-1") + saga("declined-1", declined=True))
    [failure] = staff_client.get("/bus/api/failures").json()["failures"]
    assert (failure["method"], failure["code"]) == ("charge", "card_declined")
    html = staff_client.get("/bus/failures").content.decode()
    assert 'href="/bus/traces/declined-1"' in html


def test_recorded_stream_stays_bounded(bus_redis: str, staff_client: Client) -> None:
    # 3,000 recorded calls into a stream capped near 20 entries (of up to 50 records each).
    recorder = feed({}, [Call("pricing", "quote", f"c{i}", f"r{i}") for i in range(3000)], 20)
    assert recorder.written == 3000
    client = redis.Redis.from_url(bus_redis)
    length = client.xlen(f"asgi:servicebus:{{t}}:{keys.CALLS}")
    client.close()
    assert 20 <= length <= 20 + 100  # MAXLEN ~ trims whole nodes of 100 entries
    # The newest calls are there; the oldest were trimmed away.
    assert staff_client.get("/bus/api/traces/c2999").json()["calls"]
    assert staff_client.get("/bus/api/traces/c0").json()["calls"] == []


def websocket_app() -> Any:
    return AuthMiddlewareStack(URLRouter(websocket_urlpatterns("bus/")))


def session_cookie(client: Client) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


def test_websocket_needs_a_staff_session(bus_redis: str, staff_client: Client) -> None:
    async def run() -> None:
        anonymous = WebsocketCommunicator(websocket_app(), "/bus/ws")
        assert (await anonymous.connect(timeout=5))[0] is False
        staff = WebsocketCommunicator(websocket_app(), "/bus/ws", session_cookie(staff_client))
        assert (await staff.connect(timeout=5))[0] is True
        await staff.disconnect()

    async_to_sync(run)()


def test_redis_down_page_says_so_then_recovers(
    settings: Any, staff_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DashboardConsumer, "refresh", 0.2)
    with RedisServer() as server:
        use_redis(settings, server.url)
        feed({"inventory": "inventory.request"})
        assert 'data-service="inventory"' in staff_client.get("/bus/").content.decode()

        async def run() -> None:
            socket = WebsocketCommunicator(websocket_app(), "/bus/ws", session_cookie(staff_client))
            assert (await socket.connect(timeout=5))[0]
            await socket.send_json_to({"view": "overview", "args": {}})
            first = await socket.receive_json_from(timeout=10)
            assert first["ok"] and 'data-service="inventory"' in first["html"]
            server.stop()
            started = time.monotonic()
            message = first
            while message["ok"]:
                message = await socket.receive_json_from(timeout=10)
            assert "Redis is unavailable" in message["error"]
            assert time.monotonic() - started < 10
            # The page itself (a reload) says so too, and the API answers 503.
            html = await asyncio.to_thread(lambda: staff_client.get("/bus/").content.decode())
            assert "Redis is unavailable" in html
            api = await asyncio.to_thread(staff_client.get, "/bus/api/overview")
            assert api.status_code == 503
            server.start()
            await asyncio.to_thread(feed, {"inventory": "inventory.request"})
            started = time.monotonic()
            while not message["ok"] or not message["html"]:
                message = await socket.receive_json_from(timeout=15)
            assert 'data-service="inventory"' in message["html"]
            assert time.monotonic() - started < 15
            await socket.disconnect()

        async_to_sync(run)()
    channel_layers.backends.clear()
