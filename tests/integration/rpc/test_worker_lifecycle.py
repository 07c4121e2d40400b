"""Worker lifecycle against real Redis: backpressure, SIGTERM/SIGINT drain, Redis outage.

Each test starts its own runworker process (no other worker may serve the channel).
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
import redis

import servicebus
from servicebus import Backpressure, CallTimeout
from tests.integration.rpc.conftest import LAYER, layer_settings
from tests.support.processes import runworker
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis


async def _until(check, what: str, timeout: float = 10.0) -> None:
    """Poll ``check()`` (a counter, a log line) instead of sleeping a fixed time."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.01)


def _queued(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.zcard("asgimisc.request"))
    finally:
        client.close()


async def test_backpressure_at_capacity(settings, bus, redis_url) -> None:
    settings.CHANNEL_LAYERS = layer_settings(redis_url, capacity=4)
    proc = runworker(["misc.request"], redis_url=redis_url, concurrency=1, layer=LAYER)
    try:
        # One request runs, four wait in Redis (the capacity), the next is refused at once.
        running = [asyncio.create_task(servicebus.acall("misc.request", "sleep", 1.0, timeout=10))]
        await _until(lambda: "sleeping 1.0" in proc.output, "the worker taking the first request")
        queued = [
            asyncio.create_task(servicebus.acall("misc.request", "sleep", 0.01, timeout=10))
            for _ in range(4)
        ]
        await _until(lambda: _queued(redis_url) == 4, "four requests queued in Redis")
        start = time.monotonic()
        with pytest.raises(Backpressure):
            await servicebus.acall("misc.request", "echo", 1, timeout=10)
        assert time.monotonic() - start < 0.5
        # Nothing queued was lost: all answered once the worker caught up.
        assert await asyncio.gather(*running, *queued) == [1.0] + [0.01] * 4
    finally:
        proc.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_stop_signal_drains_in_flight_requests(bus, redis_url, sig) -> None:
    proc = runworker(["misc.request"], redis_url=redis_url, concurrency=16, layer=LAYER)
    calls = [
        asyncio.create_task(servicebus.acall("misc.request", "sleep", 0.8, timeout=10))
        for _ in range(10)
    ]
    # All ten are running in the worker (each logs a line as it starts).
    await _until(lambda: proc.output.count("sleeping 0.8") == 10, "ten requests running")
    proc.signal(sig)
    assert await asyncio.gather(*calls) == [0.8] * 10
    assert await asyncio.to_thread(proc.wait, 15) == 0
    assert "draining 10 in-flight request(s)" in proc.output
    # It took nothing more after SIGTERM: a new request waits for a worker.
    with pytest.raises(CallTimeout):
        await servicebus.acall("misc.request", "echo", 1, timeout=0.5)


async def test_redis_outage_gives_typed_errors_then_recovers(settings, bus) -> None:
    # A Redis of its own, stopped and started again on the same port.
    with RedisServer() as server:
        settings.CHANNEL_LAYERS = layer_settings(server.url)
        proc = runworker(["misc.request"], redis_url=server.url, layer=LAYER)
        try:
            assert await servicebus.acall("misc.request", "echo", 1, timeout=5) == 1
            server.stop()
            for _ in range(3):
                # The promise: Redis down is BusUnavailable, at once (not a timeout).
                start = time.monotonic()
                with pytest.raises(servicebus.BusUnavailable):
                    await servicebus.acall("misc.request", "echo", 2, timeout=3)
                assert time.monotonic() - start < 2.5
            server.start()
            # Caller and worker reconnect by themselves.
            for _ in range(100):
                try:
                    assert await servicebus.acall("misc.request", "echo", 3, timeout=1) == 3
                    break
                except (servicebus.BusUnavailable, CallTimeout):
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("no answer within 10 s of Redis coming back")
            assert proc.alive()
        finally:
            assert proc.stop() == 0
