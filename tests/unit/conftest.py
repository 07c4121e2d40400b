"""Unit tests run on channels' InMemoryChannelLayer (tests/settings.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from channels.layers import channel_layers

from servicebus.metrics import metrics
from servicebus.telemetry import uninstall_defaults


@pytest.fixture(autouse=True)
def fresh_layer() -> Iterator[None]:
    """A new in-memory layer and zeroed counters for every test."""
    channel_layers.backends.clear()
    metrics.reset()
    # Unit tests see no default telemetry hooks (Django's app loading installs them).
    uninstall_defaults()
    yield
    channel_layers.backends.clear()
