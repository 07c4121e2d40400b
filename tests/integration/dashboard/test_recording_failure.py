"""A real runworker keeps serving when its call records cannot be written, then catches up.

The call stream's key is made a plain string, so every XADD of the recorder fails with
an error reply while the bus itself (the request and reply keys) works: calls go on,
the dashboard still lists the worker, and records resume once the key is fixed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from channels.layers import channel_layers
from django.test import Client

import servicebus
from servicebus.bridge import bridge
from servicebus.dashboard import data
from tests.support.processes import ManagedProcess, runworker

pytestmark = [pytest.mark.redis, pytest.mark.django_db]
CALLS_KEY = "asgi:servicebus:{t}:calls"


@pytest.fixture
def bus(settings: Any, redis_flushed: str) -> Iterator[str]:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "servicebus.layers.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_flushed]},
        }
    }
    settings.SERVICEBUS = {"SERVICE_NAME": "tests", "RECEIVE_POLL": 0.2}
    channel_layers.backends.clear()
    data.clear_cache()
    yield redis_flushed
    bridge.stop()
    channel_layers.backends.clear()


@pytest.fixture
def worker(bus: str) -> Iterator[ManagedProcess]:
    proc = runworker(["misc.request"], redis_url=bus, concurrency=16)
    yield proc
    proc.stop()


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s")


def test_worker_serves_while_recording_fails(
    bus: str, worker: ManagedProcess, staff_client: Client
) -> None:
    client = redis.Redis.from_url(bus)
    client.set(CALLS_KEY, "not a stream")  # every XADD now fails: WRONGTYPE
    for i in range(200):
        with servicebus.bind(f"broken-{i}"):
            assert servicebus.call("misc.request", "echo", i, timeout=10) == i
    with servicebus.bind("broken-fail"), pytest.raises(servicebus.RemoteError):
        servicebus.call("misc.request", "fail", timeout=10)
    time.sleep(0.5)  # several flushes failed meanwhile
    assert worker.alive()
    assert client.type(CALLS_KEY) == b"string"  # nothing was written
    # The registry has other keys: the dashboard still lists the worker.
    services = staff_client.get("/bus/api/overview").json()["services"]
    assert [s["name"] for s in services] == ["misc"]
    # Told once, not once per call or per flush.
    warnings = [line for line in worker.lines if "call records" in line]
    assert 1 <= len(warnings) <= 2, warnings

    client.delete(CALLS_KEY)
    with servicebus.bind("fixed-1"):
        assert servicebus.call("misc.request", "echo", "again", timeout=10) == "again"
    trace = wait_for(lambda: staff_client.get("/bus/api/traces/fixed-1").json()["calls"])
    assert [(c["service"], c["method"], c["code"]) for c in trace] == [("misc", "echo", "ok")]
    client.close()
    assert "Traceback" not in worker.output
