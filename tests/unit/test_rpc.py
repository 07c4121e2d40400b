"""RPC on the in-memory layer: round trips, errors, context propagation, deadlines."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest
from channels.layers import get_channel_layer

import servicebus
from servicebus import (
    BadRequest,
    CallTimeout,
    MethodNotFound,
    PayloadTooLarge,
    RemoteError,
    ServiceBusError,
)
from servicebus.conf import get_settings
from servicebus.metrics import metrics
from servicebus.testing import serve, serve_in_background
from tests.project.services import chain_a, chain_b, chain_c, misc


async def test_async_round_trip() -> None:
    async with serve(misc):
        body = {"sku": "A1", "qty": 2, "tags": ["x"], "raw": b"\x00\x01", "n": None}
        assert await servicebus.acall("misc.request", "echo", body) == body
        assert await servicebus.acall("misc.request", "sync_echo", [1, 2.5, True]) == [1, 2.5, True]


def test_sync_round_trip_from_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with serve_in_background(misc), ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda i: servicebus.call("misc.request", "echo", {"i": i}), range(40))
        )
    assert results == [{"i": i} for i in range(40)]


async def test_sync_call_inside_event_loop_is_refused() -> None:
    with pytest.raises(RuntimeError, match="acall"):
        servicebus.call("misc.request", "echo", 1)


async def test_concurrent_requests_are_handled_concurrently() -> None:
    async with serve(misc, concurrency=50):
        start = time.monotonic()
        results = await asyncio.gather(
            *(servicebus.acall("misc.request", "sleep", 0.1) for _ in range(50))
        )
        assert results == [0.1] * 50
        assert time.monotonic() - start < 2.0  # sequential would take 5 s


async def test_sync_handlers_run_in_threads_concurrently() -> None:
    async with serve(misc, concurrency=20):
        start = time.monotonic()
        await asyncio.gather(
            *(servicebus.acall("misc.request", "sync_sleep", 0.1) for _ in range(20))
        )
        assert time.monotonic() - start < 1.5  # sequential would take 2 s


async def test_service_error_reaches_caller_with_code_and_details() -> None:
    async with serve(misc):
        with pytest.raises(RemoteError) as info:
            await servicebus.acall("misc.request", "fail")
    assert info.value.code == "out_of_stock"
    assert info.value.message == "only 3 left"
    assert info.value.details == {"sku": "A1", "available": 3}
    assert type(info.value) is RemoteError


async def test_unexpected_exception_is_internal_without_traceback(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="servicebus.service")
    async with serve(misc):
        with pytest.raises(RemoteError) as info:
            await servicebus.acall("misc.request", "crash")
    assert info.value.code == "internal"
    assert "secret-internal-detail" not in str(info.value)
    assert "Traceback" not in str(info.value)
    # The worker logs the exception, with the correlation ID.
    record = next(r for r in caplog.records if r.name == "servicebus.service")
    assert "secret-internal-detail" in caplog.text
    assert getattr(record, "correlation_id", None)
    assert record.correlation_id in str(info.value)


async def test_service_log_lines_print_the_correlation_id_once(caplog) -> None:
    # The formatter of environ.logging_config prints [%(correlation_id)s]; the message
    # text must not carry it a second time.
    from servicebus.environ import logging_config

    fmt = logging_config("misc", {})["formatters"]["service"]["format"]
    formatter = logging.Formatter(fmt)
    caplog.set_level(logging.INFO, logger="servicebus.service")
    async with serve(misc):
        with servicebus.bind("cid-once-7"):
            for method in ("fail", "crash"):
                with pytest.raises(RemoteError):
                    await servicebus.acall("misc.request", method)
    records = [r for r in caplog.records if r.name == "servicebus.service"]
    assert len(records) >= 2
    for record in records:
        assert formatter.format(record).split("\n")[0].count("cid-once-7") == 1


async def test_unserializable_reply_is_internal_error() -> None:
    async with serve(misc):
        with pytest.raises(RemoteError) as info:
            await servicebus.acall("misc.request", "bad_reply")
    assert info.value.code == "internal"


async def test_method_not_found() -> None:
    async with serve(misc):
        with pytest.raises(MethodNotFound) as info:
            await servicebus.acall("misc.request", "nope")
    assert info.value.code == "method_not_found"
    assert "nope" in info.value.message
    assert isinstance(info.value, RemoteError)


async def test_timeout_when_nobody_serves() -> None:
    start = time.monotonic()
    with pytest.raises(CallTimeout) as info:
        await servicebus.acall("nobody.request", "echo", timeout=0.2)
    assert 0.15 < time.monotonic() - start < 2
    assert isinstance(info.value, ServiceBusError)
    assert "runworker" in str(info.value)  # the sentence says what to do


async def test_timeout_when_handler_is_slow_and_late_reply_counted() -> None:
    async with serve(misc):
        with pytest.raises(CallTimeout):
            await servicebus.acall("misc.request", "sleep", 0.3, timeout=0.1)
        await asyncio.sleep(0.4)
    assert metrics.get("replies_late") == 1


async def test_unserializable_argument_fails_before_sending() -> None:
    layer = get_channel_layer()
    with pytest.raises(BadRequest, match="serialized"):
        await servicebus.acall("misc.request", "echo", {"when": object()})
    assert layer.channels == {}  # nothing was sent, to any channel


async def test_oversized_argument_fails_before_sending(settings) -> None:
    settings.SERVICEBUS = {"SERVICE_NAME": "tests", "MAX_BODY_SIZE": 1000}
    assert get_settings().MAX_BODY_SIZE == 1000
    layer = get_channel_layer()
    with pytest.raises(PayloadTooLarge):
        await servicebus.acall("misc.request", "echo", "x" * 2000)
    assert layer.channels == {}
    assert isinstance(PayloadTooLarge("x"), BadRequest)


async def test_bad_headers_rejected() -> None:
    layer = get_channel_layer()
    with pytest.raises(BadRequest, match="header"):
        await servicebus.acall("misc.request", "echo", headers={"a": 1})  # type: ignore[dict-item]
    assert layer.channels == {}


async def test_backpressure_at_capacity(settings) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 3},
        }
    }
    # Nobody serves the channel: 3 requests fill it, the 4th is refused at once.
    pending = [
        asyncio.create_task(servicebus.acall("full.request", "echo", timeout=0.5)) for _ in range(3)
    ]
    await asyncio.sleep(0.01)
    start = time.monotonic()
    with pytest.raises(servicebus.Backpressure):
        await servicebus.acall("full.request", "echo", timeout=5)
    assert time.monotonic() - start < 0.1
    for task in pending:
        with pytest.raises(CallTimeout):
            await task
    assert metrics.get("calls_backpressure") == 1


async def test_chain_carries_correlation_id_headers_and_flags() -> None:
    # chain_b is a sync handler making a sync nested call; all on one loop.
    async with serve(chain_a, chain_b, chain_c), asyncio.timeout(20):
        with servicebus.bind("req-123", headers={"x-tenant": "acme"}, flags={"beta"}):
            trail = await servicebus.acall(
                "chain_a.request", "start", {"k": 1}, flags=["bulk_discount"], timeout=10
            )
    assert [hop["service"] for hop in trail] == ["chain_a", "chain_b", "chain_c"]
    assert {hop["cid"] for hop in trail} == {"req-123"}
    assert all(hop["headers"] == {"x-tenant": "acme"} for hop in trail)
    assert all(hop["flags"] == ["beta", "bulk_discount"] for hop in trail)
    assert [hop["caller"] for hop in trail] == ["tests", "chain_a", "chain_b"]
    # Each hop's deadline is capped by its parent's: a child never outlives its parent.
    deadlines = [hop["deadline"] for hop in trail]
    assert deadlines[0] <= time.time() + 10
    assert deadlines[2] <= deadlines[1] <= deadlines[0]
    assert trail[0]["remaining"] <= 10


async def test_generated_correlation_id_is_shared_by_nested_calls() -> None:
    with serve_in_background(chain_a, chain_b, chain_c):
        trail = await asyncio.to_thread(
            servicebus.call, "chain_a.request", "start", None, timeout=10
        )
    cids = {hop["cid"] for hop in trail}
    assert len(cids) == 1
    # A generated request id: 16 hex digits of per-process prefix, then a hex counter.
    assert re.fullmatch(r"[0-9a-f]{17,}", cids.pop())


async def test_nested_timeout_never_exceeds_parent_deadline() -> None:
    async with serve(misc):
        got = await servicebus.acall("misc.request", "nested_remaining", timeout=1.0)
    assert 0 < got <= 1.0


async def test_bind_inside_handler_detaches_from_deadline() -> None:
    async with serve(misc):
        remaining, inner_cid, cid = await servicebus.acall(
            "misc.request", "detached_remaining", timeout=1.0
        )
    assert remaining > 20  # its own 30 s timeout, not what was left of our 1 s
    assert inner_cid == cid


async def test_expired_request_is_not_executed() -> None:
    layer = get_channel_layer()
    from servicebus.envelope import encode_body, request_message

    ran: list[str] = []
    svc = servicebus.Service("expiry")

    @svc.method()
    async def touch(request):
        ran.append(request.id)

    await layer.send(
        "expiry.request",
        request_message(
            id="old",
            correlation_id="c",
            method="touch",
            body=encode_body(None, 100),
            reply_to=None,
            deadline=time.time() - 1,
            headers={},
            flags=[],
            caller="t",
        ),
    )
    async with serve(svc):
        for _ in range(100):
            if metrics.get("requests_expired"):
                break
            await asyncio.sleep(0.01)
    assert ran == []
    assert metrics.get("requests_expired") == 1


@pytest.mark.parametrize(
    "timeout", [float("nan"), float("inf"), -1, 0, 1e12, 86400.5, "5", True, [1]]
)
async def test_bad_timeouts_fail_before_anything_is_sent(timeout) -> None:
    layer = get_channel_layer()
    with pytest.raises(BadRequest, match="timeout"):
        await servicebus.acall("misc.request", "echo", 1, timeout=timeout)
    assert layer.channels == {}  # nothing was sent


def test_sync_call_checks_the_timeout_too() -> None:
    with pytest.raises(BadRequest, match="timeout"):
        servicebus.call("misc.request", "echo", 1, timeout=float("nan"))


@pytest.mark.parametrize("channel", ["", "no spaces", "ü.request", "x" * 120, 7])
async def test_invalid_channel_names_are_bad_requests(channel) -> None:
    with pytest.raises(BadRequest, match="channel name"):
        await servicebus.acall(channel, "echo", 1)
    assert get_channel_layer().channels == {}


async def _raw_request(**overrides) -> str:
    from servicebus.envelope import encode_body, request_message

    layer = get_channel_layer()
    reply_to = await layer.new_channel("raw")
    message = request_message(
        id="raw",
        correlation_id="raw",
        method="record",
        body=encode_body("x", 100),
        reply_to=reply_to,
        deadline=time.time() + 5,
        headers={},
        flags=[],
        caller="t",
    )
    message.update(overrides)
    await layer.send("misc.request", message)
    return reply_to


@pytest.mark.parametrize(
    "overrides",
    [{"deadline": float("nan")}, {"deadline": float("inf")}, {"v": True}, {"v": 1.0}],
)
async def test_non_finite_deadlines_and_inexact_versions_are_not_run(overrides) -> None:
    reply_to = await _raw_request(**overrides)
    async with serve(misc):
        reply = await asyncio.wait_for(get_channel_layer().receive(reply_to), 5)
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
    assert metrics.get("requests_malformed") == 1
    assert metrics.get("requests_handled") == 0


async def test_the_worker_refuses_a_body_over_max_body_size_before_decoding(settings) -> None:
    settings.SERVICEBUS = {"SERVICE_NAME": "tests", "MAX_BODY_SIZE": 1000}
    reply_to = await _raw_request(body=b"\xc4" + b"x" * 2000)  # not even valid msgpack
    async with serve(misc):
        reply = await asyncio.wait_for(get_channel_layer().receive(reply_to), 5)
    assert reply["error"]["code"] == "payload_too_large"
    assert metrics.get("requests_too_large") == 1
    assert metrics.get("requests_handled") == 0
