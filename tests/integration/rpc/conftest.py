"""Integration fixtures: the test process calls real runworker processes over real Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from channels.layers import channel_layers

from servicebus.bridge import bridge
from servicebus.metrics import metrics
from tests.support.processes import ManagedProcess, runworker

LAYER = os.environ.get("SB_LAYER", "servicebus")
BACKENDS = {
    "servicebus": "servicebus.layers.RedisChannelLayer",
    "stock": "channels_redis.core.RedisChannelLayer",
}


def layer_settings(redis_url: str, **config: object) -> dict[str, object]:
    """CHANNEL_LAYERS pointing at ``redis_url`` with the backend under test."""
    return {
        "default": {
            "BACKEND": BACKENDS[LAYER],
            "CONFIG": {"hosts": [redis_url], **config},
        }
    }


@pytest.fixture
def bus(settings, redis_url: str) -> Iterator[str]:
    """This process calls over the session Redis; fresh layer and counters per test."""
    settings.CHANNEL_LAYERS = layer_settings(redis_url)
    settings.SERVICEBUS = {"SERVICE_NAME": "tests", "RECEIVE_POLL": 0.2}
    metrics.reset()
    yield redis_url
    # The bridge loop holds connections of this test's layer: start over next test.
    bridge.stop()
    channel_layers.backends.clear()


@pytest.fixture(scope="module")
def worker(redis_url: str) -> Iterator[ManagedProcess]:
    """One runworker process serving misc.request, concurrency 64.

    Not the chain services: test_chain_across_three_processes gives each its own process
    and checks that process logged the hop.
    """
    proc = runworker(["misc.request"], redis_url=redis_url, concurrency=64, layer=LAYER)
    yield proc
    proc.stop()
