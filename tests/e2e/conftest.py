"""End-to-end fixtures: the three example services as real processes, once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack, start_stack


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """inventory, pricing and orders runworkers plus daphne, on fresh databases."""
    # A generous step timeout: 50 concurrent orders queue on SQLite's write lock, and
    # this shared machine may be slow; the outage tests use a short one.
    running = start_stack(redis_url, tmp_path_factory.mktemp("services"), call_timeout=10.0)
    yield running
    running.stop()
    assert not running.crashes()
