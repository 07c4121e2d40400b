"""End-to-end fixtures: the three example services as real processes, once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack, start_stack


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """inventory, pricing and orders runworkers plus daphne, on fresh databases."""
    running = start_stack(redis_url, tmp_path_factory.mktemp("services"), call_timeout=2.0)
    yield running
    running.stop()
    assert not running.crashes()
