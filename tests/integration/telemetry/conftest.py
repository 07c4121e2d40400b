"""Fixtures: this process calls real runworker processes over the session's private Redis."""

from __future__ import annotations

from collections.abc import Iterator

import django
import pytest
from channels.layers import channel_layers
from django.apps import apps

from servicebus.bridge import bridge

pytestmark = pytest.mark.redis

if not apps.ready:  # the commands under test need the app registry
    django.setup()


@pytest.fixture
def bus(settings, redis_flushed: str) -> Iterator[str]:
    """This process on the (flushed) session Redis with our layer; fresh layer per test."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "servicebus.layers.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_flushed]},
        }
    }
    settings.SERVICEBUS = {"SERVICE_NAME": "tests", "RECEIVE_POLL": 0.2}
    yield redis_flushed
    bridge.stop()
    channel_layers.backends.clear()
