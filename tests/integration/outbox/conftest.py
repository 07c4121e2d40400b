"""Fixtures for the outbox integration tests: Redis-backed settings and a database alias."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
import redis
from django.apps import apps
from django.conf import settings as dj_settings

# Test modules here import models at module level; the root conftest chose the settings.
if not apps.ready:
    django.setup()

from servicebus.outbox import registry

DB_ALIASES = ["default", "pg"]


@pytest.fixture
def outbox_settings(settings: Any, redis_flushed: str) -> dict[str, Any]:
    """SERVICEBUS_OUTBOX on the test Redis, with short timeouts for tests."""
    settings.SERVICEBUS_OUTBOX = {
        "REDIS_URL": redis_flushed,
        "VISIBILITY_TIMEOUT": 0.2,
        "CONSUMER_BLOCK_SECONDS": 0.1,
        "RELAY_POLL_INTERVAL": 0.05,
        "MAX_DELIVERIES": 3,
        "CONSUMER_GROUP": "replica",
    }
    return settings.SERVICEBUS_OUTBOX


@pytest.fixture
def redis_client(outbox_settings: dict[str, Any]) -> Iterator[redis.Redis]:
    """A text client on the test Redis."""
    client = redis.Redis.from_url(
        outbox_settings["REDIS_URL"], decode_responses=True, encoding_errors="replace"
    )
    yield client
    client.close()


@pytest.fixture(params=DB_ALIASES)
def alias(request: pytest.FixtureRequest) -> str:
    """Each test runs on SQLite ("default") and on PostgreSQL ("pg") when it answers."""
    if request.param not in dj_settings.DATABASES:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not answering")
    return str(request.param)


@pytest.fixture
def handlers() -> Iterator[list[tuple[str, Any]]]:
    """Register test handlers with ``handlers.append((topic, fn))``; removed afterwards."""
    added: list[tuple[str, Any]] = []

    class Registrar(list):  # type: ignore[type-arg]
        def append(self, item: tuple[str, Any]) -> None:
            registry.subscriber(item[0])(item[1])
            added.append(item)

    yield Registrar()
    for topic, fn in added:
        registry.unregister(topic, fn)
