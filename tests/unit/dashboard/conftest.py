"""Dashboard unit fixtures: users, logged-in clients and canned telemetry figures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.apps import apps

# The root conftest chose the settings; users and sessions need the app registry.
if not apps.ready:
    django.setup()

from django.test import Client

from servicebus.dashboard import data

HISTORY = [[1_700_000_000.0 + 15 * i, 15 * i, i % 2, 1.0, 2.0 * i] for i in range(60)]
CALL = {
    "correlation_id": "cid-1",
    "parent_id": None,
    "request_id": "r1",
    "service": "inventory",
    "method": "allocate",
    "caller": "orders",
    "start": 1_700_000_000.0,
    "duration_ms": 10.0,
    "code": "ok",
    "kind": "server",
    "instance": "host:1:abc",
}
# Shapes of servicebus.telemetry.read (what the API answers, unchanged).
SAMPLE: dict[str, Any] = {
    "overview": {
        "time": 1_700_000_900.0,
        "services": [
            {
                "name": "orders",
                "channel": "orders.request",
                "instances": [
                    {
                        "instance": "host:1:abc",
                        "host": "host",
                        "pid": 1,
                        "version": "0.1.0",
                        "uptime": 65.0,
                        "age": 2.0,
                        "stale": False,
                        "in_flight": 3,
                        "concurrency": 64,
                        "calls_per_s": 12.5,
                        "errors_per_s": 0.5,
                        "p50_ms": 1.2,
                        "p99_ms": 30.0,
                    },
                    {"instance": "host:2:def", "host": "host", "pid": 2, "stale": True},
                ],
                "backlog": 5,
                "capacity": 100,
                "in_flight": 3,
                "concurrency": 64,
                "calls_per_s": 12.5,
                "errors_per_s": 0.5,
                "p50_ms": 1.2,
                "p99_ms": 30.0,
                "history": HISTORY,
            }
        ],
    },
    "service": {
        "name": "orders",
        "channel": "orders.request",
        "instances": [{"instance": "host:1:abc", "host": "host", "pid": 1, "stale": False}],
        "backlog": 0,
        "capacity": 100,
        "history": HISTORY,
        "methods": [
            {
                "name": "place",
                "doc": "Place an order.",
                "request_schema": {"type": "object"},
                "response_schema": None,
                "count": 11,
                "codes": {"ok": 10, "card_declined": 1},
                "calls_per_s": 1.0,
                "errors_per_s": 0.1,
                "p50_ms": 2.0,
                "p99_ms": 9.0,
            }
        ],
        "info": {
            "service": "orders",
            "methods": [
                {
                    "name": "place",
                    "doc": "Place an order.",
                    "request_schema": {"type": "object"},
                    "response_schema": None,
                }
            ],
        },
        "info_error": None,
    },
    "trace": {
        "correlation_id": "cid-1",
        "start": 1_700_000_000.0,
        "duration_ms": 40.0,
        "calls": [
            {**CALL, "offset_ms": 0.0, "depth": 0, "ok": True},
            {
                **CALL,
                "request_id": "r2",
                "service": "pricing",
                "method": "charge",
                "start": 1_700_000_000.02,
                "duration_ms": 20.0,
                "code": "card_declined",
                "offset_ms": 20.0,
                "depth": 0,
                "ok": False,
            },
        ],
    },
    "failures": {
        "failures": [
            {**CALL, "service": "pricing", "method": "charge", "code": "card_declined"},
        ]
    },
    "events": {
        "streams": [
            {
                "topic": "inventory.product",
                "stream": "servicebus:events:inventory.product",
                "length": 3,
                "groups": [{"name": "orders", "lag": 0, "pending": 1, "consumers": 1}],
            }
        ],
        "outbox": {"pending": 2, "oldest_age": 4.5},
        "dead_letters": [
            {
                "topic": "inventory.product",
                "stream": "servicebus:deadletter:inventory.product",
                "count": 1,
            }
        ],
    },
}


class FakeTelemetry:
    """Stands in for ``servicebus.telemetry.read``: canned figures, or an outage."""

    def __init__(self) -> None:
        self.down: Exception | None = None
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _answer(self, view: str, **args: Any) -> Any:
        self.calls.append((view, args))
        if self.down is not None:
            raise self.down
        return SAMPLE[view]

    async def overview(self, store: Any) -> dict[str, Any]:
        return self._answer("overview")

    async def service(self, store: Any, name: str, **options: Any) -> dict[str, Any]:
        answer = self._answer("service", name=name, ask=options.get("ask", True))
        if name != "orders":  # what read.service answers for a name nobody serves
            return {**answer, "name": name, "instances": [], "info": None, "methods": []}
        return answer

    async def trace(self, store: Any, correlation_id: str) -> dict[str, Any]:
        return self._answer("trace", correlation_id=correlation_id)

    async def failures(self, store: Any) -> list[dict[str, Any]]:
        return self._answer("failures")["failures"]

    def events(self) -> dict[str, Any]:
        return self._answer("events")


@pytest.fixture
def telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelemetry]:
    """Canned figures behind ``data.aread`` (no cache between tests)."""
    fake = FakeTelemetry()
    monkeypatch.setattr(data, "_telemetry", lambda: fake)
    monkeypatch.setattr(data, "_store", lambda: object())
    monkeypatch.setattr(data, "CACHE_SECONDS", 0.0)
    data.clear_cache()
    yield fake
    data.clear_cache()


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    """Test users log in many times: a fast hasher keeps the suite quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("ops", password="pw-ops-1234", is_staff=True)


@pytest.fixture
def plain_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("dev", password="pw-dev-1234")


@pytest.fixture
def staff_client(staff_user: Any) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def plain_client(plain_user: Any) -> Client:
    client = Client()
    client.force_login(plain_user)
    return client
