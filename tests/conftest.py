"""Shared fixtures: a private Redis for integration and e2e tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from tests.support.redis_server import RedisServer, external_redis_url  # noqa: E402


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis for this test session: REDIS_URL, or a private redis-server."""
    url = external_redis_url()
    if url:
        yield url
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture
def redis_flushed(redis_url: str) -> str:
    """The session Redis, emptied before the test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    return redis_url


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI (SERVICEBUS_REQUIRE_POSTGRES=1) a missing PostgreSQL fails the run, never skips."""
    if os.environ.get("SERVICEBUS_REQUIRE_POSTGRES") != "1":
        return
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            pass
    except OSError as exc:
        raise pytest.UsageError(
            "SERVICEBUS_REQUIRE_POSTGRES=1 but PostgreSQL at 127.0.0.1:5432 "
            f"is not answering ({exc})"
        ) from exc
