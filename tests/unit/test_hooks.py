"""Hooks: middleware around dispatch and calls, in the request's context, never failing a call."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

import servicebus
from servicebus import hooks
from servicebus.envelope import encode_body, request_message
from servicebus.metrics import metrics
from servicebus.service import Service
from servicebus.testing import serve
from servicebus.transport import get_transport

span: contextvars.ContextVar[str | None] = contextvars.ContextVar("span", default=None)


class Tracer:
    """A toy tracer: a span per server call made current; traceparent on client calls."""

    def __init__(self) -> None:
        self.events: list[tuple[str, hooks.CallInfo]] = []
        self.drops: list[tuple[str, str, int]] = []

    def server_start(self, info: hooks.CallInfo) -> None:
        self.events.append(("server_start", info))
        info.state["token"] = span.set(f"span-{info.request_id}")

    def server_end(self, info: hooks.CallInfo) -> None:
        self.events.append(("server_end", info))
        span.reset(info.state["token"])

    def client_start(self, info: hooks.CallInfo) -> None:
        self.events.append(("client_start", info))
        info.headers["traceparent"] = f"00-{info.request_id}-{span.get() or 'root'}-01"

    def client_end(self, info: hooks.CallInfo) -> None:
        self.events.append(("client_end", info))

    def dropped(self, reason: str, where: str, count: int) -> None:
        self.drops.append((reason, where, count))


@pytest.fixture
def tracer() -> Iterator[Tracer]:
    hook = Tracer()
    hooks.install(hook)
    try:
        yield hook
    finally:
        hooks.uninstall(hook)


svc = Service("traced")


@svc.method()
async def outer(request: servicebus.Request) -> dict[str, Any]:
    inner_headers = await servicebus.acall("traced.request", "inner", timeout=5)
    return {"span": span.get(), "headers": dict(request.headers), "inner": inner_headers}


@svc.method()
async def inner(request: servicebus.Request) -> dict[str, Any]:
    return {"headers": dict(request.headers), "parent": request.parent_id}


@svc.method()
def sync_span(request: servicebus.Request) -> str | None:
    return span.get()


@svc.method()
async def fail(request: servicebus.Request) -> None:
    raise servicebus.ServiceError("out_of_stock", "none left")


async def test_server_hooks_run_in_the_request_context_and_trace_nested_calls(tracer) -> None:
    async with serve(svc):
        with servicebus.bind("cid-9", headers={"x-tenant": "acme"}):
            got = await servicebus.acall("traced.request", "outer", timeout=5)
        assert await servicebus.acall("traced.request", "sync_span") is not None
    kinds = [kind for kind, _ in tracer.events]
    assert kinds[:4] == ["client_start", "server_start", "client_start", "server_start"]
    first_client, outer_server = tracer.events[0][1], tracer.events[1][1]
    nested_client, inner_server = tracer.events[2][1], tracer.events[3][1]
    # The handler saw the span made current by server_start.
    assert got["span"] == f"span-{outer_server.request_id}"
    # The edge call's traceparent came from client_start; the nested call got its own,
    # made under the outer span, and not a copy of the parent's.
    assert got["headers"]["traceparent"].startswith(f"00-{first_client.request_id}-root")
    assert got["headers"]["x-tenant"] == "acme"
    inner_tp = got["inner"]["headers"]["traceparent"]
    assert inner_tp == f"00-{nested_client.request_id}-span-{outer_server.request_id}-01"
    assert got["inner"]["headers"]["x-tenant"] == "acme"  # other headers are inherited
    # parent ids: the nested call names the request being handled.
    assert nested_client.parent_id == outer_server.request_id == got["inner"]["parent"]
    assert first_client.parent_id is None and inner_server.parent_id == outer_server.request_id
    assert {i.correlation_id for _, i in tracer.events[:4]} == {"cid-9"}
    assert (first_client.kind, outer_server.kind) == ("client", "server")
    assert (first_client.service, outer_server.service, outer_server.method) == (
        "traced",
        "traced",
        "outer",
    )


async def test_sync_handlers_see_the_hook_context(tracer) -> None:
    async with serve(svc):
        got = await servicebus.acall("traced.request", "sync_span")
    server = next(i for k, i in tracer.events if k == "server_start")
    assert got == f"span-{server.request_id}"


async def test_end_hooks_get_code_and_duration(tracer) -> None:
    async with serve(svc):
        with pytest.raises(servicebus.RemoteError):
            await servicebus.acall("traced.request", "fail")
        with pytest.raises(servicebus.CallTimeout):
            await servicebus.acall("nobody.request", "x", timeout=0.05)
    ends = {(k, i.method): i for k, i in tracer.events if k.endswith("_end")}
    assert ends[("server_end", "fail")].code == "out_of_stock"
    assert ends[("client_end", "fail")].code == "out_of_stock"
    assert ends[("client_end", "x")].code == "timeout"
    assert ends[("client_end", "x")].duration >= 0.04
    assert ends[("server_end", "fail")].duration >= 0


class Broken:
    def server_start(self, info: hooks.CallInfo) -> None:
        raise RuntimeError("hook bug")

    def client_end(self, info: hooks.CallInfo) -> None:
        raise RuntimeError("hook bug")


async def test_a_raising_hook_is_logged_once_and_never_fails_a_call(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="servicebus.hooks")
    hooks._last_logged.clear()
    broken = Broken()
    hooks.install(broken)
    try:
        async with serve(svc):
            for _ in range(5):
                assert await servicebus.acall("traced.request", "inner") is not None
    finally:
        hooks.uninstall(broken)
    assert metrics.get("hooks_failed") == 10
    logged = [r for r in caplog.records if "hook bug" in r.getMessage()]
    assert len(logged) == 2  # one per hook method, then quiet for a minute


async def test_drops_reach_counters_and_hooks(tracer) -> None:
    message = request_message(
        id="old",
        correlation_id="c",
        method="inner",
        body=encode_body(None, 100),
        reply_to=None,
        deadline=time.time() - 1,
        headers={},
        flags=[],
        caller="t",
    )
    await get_transport().send("traced.request", message)
    async with serve(svc):
        for _ in range(100):
            if tracer.drops:
                break
            await servicebus.acall("traced.request", "inner")
    assert tracer.drops == [("expired", "requests", 1)]
    assert metrics.get("requests_expired") == 1


async def test_no_hook_costs_one_check(monkeypatch) -> None:
    assert not hooks.enabled
    monkeypatch.setattr(hooks, "CallInfo", None)  # would fail if anything built one
    async with serve(svc):
        assert (await servicebus.acall("traced.request", "inner"))["parent"] is None


def test_install_rejects_objects_without_hook_methods() -> None:
    with pytest.raises(TypeError):
        hooks.install(object())


async def test_nested_calls_do_not_inherit_trace_context() -> None:
    async with serve(svc):
        headers = {"traceparent": "00-abc-def-01", "tracestate": "k=v", "x-tenant": "acme"}
        got = await servicebus.acall("traced.request", "outer", headers=headers)
    assert got["headers"] == headers  # the edge's own call carries what it was given
    assert got["inner"]["headers"] == {"x-tenant": "acme"}  # a hook sets trace context
