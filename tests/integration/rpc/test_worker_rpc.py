"""RPC against a real runworker process over a real Redis."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

import servicebus
from servicebus import CallTimeout, MethodNotFound, RemoteError
from servicebus.envelope import request_message
from servicebus.transport import get_transport
from tests.integration.rpc.conftest import LAYER
from tests.support.processes import runworker

pytestmark = pytest.mark.redis


async def test_async_round_trip(bus, worker) -> None:
    body = {"sku": "A1", "qty": 3, "blob": b"\xff" * 10}
    assert await servicebus.acall("misc.request", "echo", body) == body
    assert await servicebus.acall("misc.request", "sync_echo", "hi") == "hi"


def test_sync_round_trip_from_threads(bus, worker) -> None:
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: servicebus.call("misc.request", "echo", i), range(64)))
    assert got == list(range(64))


async def test_fifty_slow_requests_run_concurrently_on_one_worker(bus, worker) -> None:
    start = time.monotonic()
    results = await asyncio.gather(
        *(servicebus.acall("misc.request", "sleep", 0.1, timeout=10) for _ in range(50))
    )
    elapsed = time.monotonic() - start
    assert results == [0.1] * 50
    assert elapsed < 2.5, f"50 x 100 ms took {elapsed:.2f}s: requests were not concurrent"


async def test_sync_handlers_run_concurrently_too(bus, worker) -> None:
    start = time.monotonic()
    await asyncio.gather(
        *(servicebus.acall("misc.request", "sync_sleep", 0.1, timeout=10) for _ in range(30))
    )
    assert time.monotonic() - start < 2.5


async def test_timeout_on_slow_handler(bus, worker) -> None:
    start = time.monotonic()
    with pytest.raises(CallTimeout):
        await servicebus.acall("misc.request", "sleep", 1.0, timeout=0.2)
    assert time.monotonic() - start < 1.0


async def test_timeout_when_no_worker_listens(bus) -> None:
    with pytest.raises(CallTimeout):
        await servicebus.acall("nobody.request", "echo", timeout=0.3)


async def test_remote_error_codes(bus, worker) -> None:
    with pytest.raises(RemoteError) as info:
        await servicebus.acall("misc.request", "fail")
    assert (info.value.code, info.value.details) == ("out_of_stock", {"sku": "A1", "available": 3})
    with pytest.raises(RemoteError) as crash:
        await servicebus.acall("misc.request", "crash")
    assert crash.value.code == "internal"
    assert "secret-internal-detail" not in str(crash.value)


async def test_method_not_found(bus, worker) -> None:
    with pytest.raises(MethodNotFound):
        await servicebus.acall("misc.request", "does_not_exist")


async def test_chain_across_three_processes(bus, redis_url) -> None:
    # A -> B -> C, each service in its own worker process.
    procs = [
        runworker([f"chain_{x}.request"], redis_url=redis_url, name=f"worker-{x}", layer=LAYER)
        for x in "abc"
    ]
    try:
        with servicebus.bind("cid-chain-1", headers={"x-tenant": "acme"}, flags=["beta"]):
            trail = await servicebus.acall(
                "chain_a.request", "start", {"n": 1}, flags=["bulk_discount"], timeout=5
            )
    finally:
        for proc in procs:
            proc.stop()
    assert [hop["service"] for hop in trail] == ["chain_a", "chain_b", "chain_c"]
    assert {hop["cid"] for hop in trail} == {"cid-chain-1"}
    assert all(hop["headers"] == {"x-tenant": "acme"} for hop in trail)
    assert all(hop["flags"] == ["beta", "bulk_discount"] for hop in trail)
    # Deadlines never grow down the chain: a child never outlives its parent.
    deadlines = [hop["deadline"] for hop in trail]
    assert deadlines[0] <= time.time() + 5 and deadlines[2] <= deadlines[1] <= deadlines[0]
    # Every process logged its own hop with the correlation ID.
    for proc, (service, method) in zip(
        procs, [("chain_a", "start"), ("chain_b", "middle"), ("chain_c", "leaf")], strict=True
    ):
        line = proc.wait_for(f"hop {service}.{method}", timeout=5)
        assert "[cid-chain-1]" in line, line


async def test_deadline_propagates_to_nested_call(bus, worker) -> None:
    remaining = await servicebus.acall("misc.request", "nested_remaining", timeout=1.5)
    assert 0 < remaining <= 1.5


async def test_garbage_in_request_channel_does_not_kill_worker(bus, worker, redis_url) -> None:
    layer = get_transport().layer
    raw = redis.Redis.from_url(redis_url)
    key = "asgi" + "misc.request"
    # Bytes that no serializer can read, pushed straight into the channel's sorted set.
    raw.zadd(key, {b"\x00garbage-not-msgpack\xc1\xc1": time.time(), b"short": time.time()})
    # Valid layer messages that are not valid envelopes.
    await layer.send("misc.request", {"no": "type"})
    await layer.send("misc.request", {"type": "servicebus.request", "v": 99})
    await layer.send("misc.request", {"type": "other.thing", "body": [1, 2]})
    # A malformed envelope that names a reply channel is answered with BadRequest.
    router_reply = await layer.new_channel("badreq")
    await layer.send(
        "misc.request",
        {"type": "servicebus.request", "v": 1, "id": "r1", "reply_to": router_reply},
    )
    reply = await asyncio.wait_for(layer.receive(router_reply), 5)
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
    # A body that is not msgpack is a BadRequest too.
    message = request_message(
        id="r2",
        correlation_id="c2",
        method="echo",
        body=b"\xc1",
        reply_to=router_reply,
        deadline=time.time() + 5,
        headers={},
        flags=[],
        caller="t",
    )
    await layer.send("misc.request", message)
    reply = await asyncio.wait_for(layer.receive(router_reply), 5)
    assert reply["error"]["code"] == "bad_request"
    raw.close()
    # The worker is alive and answers.
    assert worker.alive()
    assert await servicebus.acall("misc.request", "echo", "still here") == "still here"
