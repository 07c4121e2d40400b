"""A caller too busy to drain its replies loses none: reply channels have their own capacity."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from channels.layers import channel_layers

import servicebus
from servicebus.bridge import bridge
from tests.integration.rpc.conftest import layer_settings
from tests.support.processes import ManagedProcess, runworker

# Requests may queue 500; every other channel 4 (before reply_capacity, replies too).
TIGHT = {"capacity": 4, "channel_capacity": {"misc.request": 500}}


@pytest.fixture
def tight_worker(redis_url: str) -> Iterator[ManagedProcess]:
    env = {"SB_CAPACITY": "4", "SB_CHANNEL_CAPACITY": json.dumps(TIGHT["channel_capacity"])}
    proc = runworker(["misc.request"], redis_url=redis_url, concurrency=64, extra_env=env)
    yield proc
    proc.stop()


async def test_a_busy_caller_loses_no_replies(
    settings, redis_url: str, tight_worker: ManagedProcess
) -> None:
    settings.CHANNEL_LAYERS = layer_settings(redis_url, **TIGHT)
    settings.SERVICEBUS = {"SERVICE_NAME": "tests", "RECEIVE_POLL": 0.2}
    try:
        calls = [
            asyncio.ensure_future(servicebus.acall("misc.request", "echo", i, timeout=5))
            for i in range(60)
        ]
        await asyncio.sleep(0.1)  # every request is sent
        # This process's event loop is busy: all 60 replies wait in its reply key, 15x the
        # channel capacity. Each is still delivered.
        time.sleep(1.5)
        assert await asyncio.gather(*calls) == list(range(60))
        assert "not delivered" not in tight_worker.output
    finally:
        bridge.stop()
        channel_layers.backends.clear()
