"""Dashboard unit fixtures: users, logged-in clients and canned telemetry figures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import django
import pytest
from django.apps import apps

# The root conftest chose the settings; users and sessions need the app registry.
if not apps.ready:
    django.setup()

from django.test import Client

from servicebus.dashboard import data

SAMPLE: dict[str, Any] = {
    "overview": {
        "services": [
            {
                "name": "orders",
                "channel": "orders.request",
                "instances": [
                    {
                        "instance": "host:1:abc",
                        "host": "host",
                        "pid": 1,
                        "uptime": 65,
                        "inflight": 3,
                        "concurrency": 64,
                        "stale": False,
                        "age": 2,
                    },
                    {"instance": "host:2:def", "host": "host", "pid": 2, "stale": True},
                ],
                "backlog": 5,
                "capacity": 100,
                "calls_per_s": 12.5,
                "errors_per_s": 0.5,
                "p50_ms": 1.2,
                "p99_ms": 30.0,
                "history": {"calls_per_s": [1, 2, 3, 12.5], "errors_per_s": [0, 0, 1, 0.5]},
            }
        ]
    },
    "service": {
        "name": "orders",
        "channel": "orders.request",
        "instances": [],
        "methods": [
            {
                "name": "place",
                "doc": "Place an order.",
                "request_schema": {"type": "object"},
                "response_schema": None,
                "calls_per_s": 1.0,
                "codes": {"ok": 10, "card_declined": 1},
            }
        ],
    },
    "trace": {
        "correlation_id": "cid-1",
        "started": 1_700_000_000.0,
        "duration_ms": 40.0,
        "calls": [
            {
                "service": "inventory",
                "method": "allocate",
                "caller": "orders",
                "code": "ok",
                "offset_ms": 0.0,
                "duration_ms": 10.0,
                "depth": 0,
                "correlation_id": "cid-1",
            },
            {
                "service": "pricing",
                "method": "charge",
                "caller": "orders",
                "code": "card_declined",
                "offset_ms": 20.0,
                "duration_ms": 20.0,
                "depth": 0,
                "correlation_id": "cid-1",
            },
        ],
    },
    "failures": {
        "failures": [
            {
                "service": "pricing",
                "method": "charge",
                "caller": "orders",
                "code": "card_declined",
                "started": 1_700_000_000.0,
                "duration_ms": 20.0,
                "correlation_id": "cid-1",
            }
        ]
    },
    "events": {
        "streams": [
            {
                "topic": "inventory.product",
                "length": 3,
                "groups": [{"name": "orders", "lag": 0, "pending": 1, "consumers": 1}],
            }
        ],
        "outbox": {"backlog": 2},
        "dead_letters": [
            {"topic": "inventory.product", "dead_id": "1-0", "group": "orders", "error": "boom"}
        ],
    },
}


class FakeTelemetry:
    """Stands in for ``servicebus.telemetry.read``: canned figures, or an outage."""

    def __init__(self) -> None:
        self.down: Exception | None = None
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def reader(self, view: str) -> Callable[..., dict[str, Any]]:
        def read(**args: Any) -> dict[str, Any]:
            self.calls.append((view, args))
            if self.down is not None:
                raise self.down
            if view == "service" and args["name"] != "orders":
                raise data.NotFound(args["name"])
            return SAMPLE[view]

        return read


@pytest.fixture
def telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelemetry]:
    """Canned figures behind ``data.read`` (no cache between tests)."""
    fake = FakeTelemetry()
    monkeypatch.setattr(data, "_reader", fake.reader)
    monkeypatch.setattr(data, "CACHE_SECONDS", 0.0)
    data.clear_cache()
    yield fake
    data.clear_cache()


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
