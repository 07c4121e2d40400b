"""Dispatch, the worker's slots and replies, ServiceConsumer, and the supervised reply router."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

import servicebus
from servicebus.client import ReplyRouter, router_for
from servicebus.envelope import encode_body, request_message
from servicebus.metrics import metrics
from servicebus.service import Service
from servicebus.testing import serve
from servicebus.transport import LayerTransport, get_transport
from servicebus.worker import ServiceConsumer
from tests.project.services import misc


def _request(method: str, body: Any = None, reply_to: str | None = "r.x!y") -> dict[str, Any]:
    return request_message(
        id="id-1",
        correlation_id="cid-1",
        method=method,
        body=encode_body(body, 1000),
        reply_to=reply_to,
        deadline=time.time() + 5,
        headers={},
        flags=[],
        caller="t",
    )


async def test_dispatch_returns_the_reply_and_sends_nothing() -> None:
    layer = get_transport().layer
    outgoing = await misc.dispatch(_request("echo", {"a": 1}))
    assert outgoing is not None
    reply_to, reply = outgoing
    assert reply_to == "r.x!y"
    assert reply["ok"] is True and reply["id"] == "id-1"
    assert layer.channels == {}  # dispatch never sends
    assert await misc.dispatch(_request("echo", reply_to=None)) is None


async def test_dispatch_of_malformed_and_expired_messages() -> None:
    bad = await misc.dispatch({"type": "servicebus.request", "v": 1, "id": "x", "reply_to": "r!y"})
    assert bad is not None and bad[1]["error"]["code"] == "bad_request"
    assert await misc.dispatch([1, 2]) is None
    expired = {**_request("echo"), "deadline": time.time() - 1}
    assert await misc.dispatch(expired) is None
    assert metrics.get("requests_malformed") == 2
    assert metrics.get("requests_expired") == 1


async def test_builtin_ping_is_answered_without_user_code() -> None:
    svc = Service("pingable")
    async with serve(svc):
        pong = await servicebus.acall("pingable.request", "_ping")
    assert pong["service"] == "pingable"
    with pytest.raises(ValueError, match="reserved"):
        svc.method("_stats")(lambda request: None)
    async with serve(svc):
        with pytest.raises(servicebus.MethodNotFound):
            await servicebus.acall("pingable.request", "_nope")


async def test_service_consumer_bounds_concurrency_with_the_worker_slots() -> None:
    running = 0
    peak = 0
    svc = Service("bounded")

    @svc.method()
    async def slow(request):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return request.body

    queue: asyncio.Queue[Any] = asyncio.Queue()
    for i in range(6):
        queue.put_nowait({**_request("slow", i, reply_to=None), "id": f"r{i}"})
    consumer = ServiceConsumer(svc, concurrency=2)
    task = asyncio.create_task(consumer({"type": "channel"}, queue.get, None))  # type: ignore[arg-type]
    for _ in range(200):
        if metrics.get("requests_handled") == 6:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert metrics.get("requests_handled") == 6
    assert peak == 2


class FlakyTransport(LayerTransport):
    """listen() raises once (an injected fault), then behaves."""

    def __init__(self, layer: Any) -> None:
        super().__init__(layer)
        self.listens = 0

    async def listen(self, channel: str, deliver: Any) -> None:
        self.listens += 1
        if self.listens == 1:
            raise RuntimeError("injected fault")
        await super().listen(channel, deliver)


async def test_reply_router_restarts_after_a_crash(monkeypatch) -> None:
    transport = FlakyTransport(get_transport().layer)
    monkeypatch.setattr("servicebus.client.get_transport", lambda: transport)
    async with serve(misc):
        assert await servicebus.acall("misc.request", "echo", 1, timeout=5) == 1
        assert await servicebus.acall("misc.request", "echo", 2, timeout=5) == 2
    assert transport.listens == 2
    assert metrics.get("reply_listener_restarts") == 1


async def test_reply_router_task_killed_is_revived_on_the_next_call() -> None:
    async with serve(misc):
        assert await servicebus.acall("misc.request", "echo", 1) == 1
        router = router_for(get_transport())
        assert router._task is not None
        router._task.cancel()
        await asyncio.sleep(0)
        assert not router.alive
        assert await servicebus.acall("misc.request", "echo", 2, timeout=5) == 2
        assert router_for(get_transport()) is router and router.alive
    assert metrics.get("reply_listener_restarts") == 1


def test_one_bad_reply_never_costs_its_neighbours() -> None:
    router = ReplyRouter(LayerTransport(InMemoryChannelLayer()))
    loop = asyncio.new_event_loop()
    try:
        good = loop.create_future()
        other = loop.create_future()
        router._waiters.update({"a": (good, 0), "b": (other, 0)})  # (future, deadline bucket)
        # A reply for "b" whose future's set_result fails: an injected delivery fault.
        other.set_result = None  # type: ignore[method-assign]
        router.deliver(
            [
                {"type": "servicebus.reply", "v": 1, "id": "b", "ok": True, "body": b"\x01"},
                42,
                {"type": "servicebus.reply", "id": 7},
                {"type": "servicebus.reply", "v": 1, "id": "zz", "ok": True, "body": b"\x01"},
                {"type": "servicebus.reply", "v": 1, "id": "a", "ok": True, "body": b"\x02"},
            ]
        )
        assert good.result().body == b"\x02"
    finally:
        loop.close()
    assert metrics.get("replies_error") == 1
    assert metrics.get("replies_malformed") == 2
    assert metrics.get("replies_late") == 1


class SwallowingTransport(LayerTransport):
    """Like stock channels_redis mid-read: a cancellation comes out as a connection error."""

    async def listen(self, channel: str, deliver: Any) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise servicebus.BusUnavailable("Connection closed by server") from None


async def test_a_cancelled_router_stops_even_when_the_layer_swallows_the_cancel() -> None:
    router = ReplyRouter(SwallowingTransport(InMemoryChannelLayer()))
    await router.ensure_started()
    await asyncio.sleep(0.01)
    assert router._task is not None
    router._task.cancel()
    done, _ = await asyncio.wait({router._task}, timeout=2)
    assert done and router._task.cancelled()
