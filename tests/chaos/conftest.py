"""The chaos suite: real processes and a private Redis, under faults and hostile input.

Every test here is bounded in count and time and talks to loopback only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.layers import channel_layers

from servicebus.bridge import bridge
from servicebus.metrics import metrics


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: fault injection against real processes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chaos/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.chaos)


@pytest.fixture
def caller(settings: Any, redis_flushed: str) -> Iterator[Callable[..., None]]:
    """This process calls over the session Redis; ``caller(url, **config)`` re-points it."""

    def configure(url: str = redis_flushed, **config: object) -> None:
        channel_layers.backends.clear()
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "servicebus.layers.RedisChannelLayer",
                "CONFIG": {"hosts": [url], "capacity": 1000, **config},
            }
        }

    settings.SERVICEBUS = {"SERVICE_NAME": "chaos-caller", "RECEIVE_POLL": 0.2}
    configure()
    metrics.reset()
    yield configure
    # The bridge loop holds connections of this test's layer: start over next test.
    bridge.stop()
    channel_layers.backends.clear()


@pytest.fixture
def record_dir(tmp_path: Path) -> Path:
    """Where the chaos workers append the keys they ran."""
    path = tmp_path / "records"
    path.mkdir()
    return path
