"""pytest fixtures shipped with servicebus (on by default: a ``pytest11`` entry point).

    def test_order_is_released_when_the_card_is_declined(stub_service):
        inventory = stub_service("inventory", allocate={"status": "allocated"}, release={})
        stub_service("pricing", charge=ServiceError("card_declined", "declined"), ...)
        ...                                   # code under test calls servicebus.call(...)
        assert inventory.calls_to("release") == [{"order_id": "o1"}]

- ``servicebus_bus``: the test's channel layer becomes channels' ``InMemoryChannelLayer``
  (``CHANNEL_LAYERS[SERVICEBUS["CHANNEL_LAYER"]]``, fresh per test); ``bus.serve(svc)``
  runs real services on it for the test.
- ``stub_service(name, **methods)``: a service that answers each method with a value, an
  exception to raise, or ``callable(request)``, and records every call.
- ``captured_events``: the outbox events (``publish_event``, ``SourceModel`` saves) the
  test wrote and did not roll back, as ``Event``-like records.

Services are served on the sync bridge's loop, where ``servicebus.call()`` runs. An
async test calling ``acall`` on its own loop serves them there instead:
``async with servicebus.testing.serve(stub.service): ...``.
Nothing here imports Django at collection time: only the fixtures do, when used.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = [
    "CapturedEvent",
    "InMemoryBus",
    "Stub",
    "captured_events",
    "servicebus_bus",
    "stub_service",
]

IN_MEMORY = {"BACKEND": "channels.layers.InMemoryChannelLayer"}


class InMemoryBus:
    """The in-memory channel layer of one test, and the services served on it."""

    def __init__(self) -> None:
        self._serving = contextlib.ExitStack()

    def serve(self, *services: Any, concurrency: int | None = None) -> Any:
        """Run a worker for ``services`` until the test ends; returns the worker."""
        from servicebus.testing import serve_in_background

        return self._serving.enter_context(serve_in_background(*services, concurrency=concurrency))

    def close(self) -> None:
        """Stop every worker this bus started."""
        self._serving.close()


@pytest.fixture
def servicebus_bus() -> Iterator[InMemoryBus]:
    """A fresh in-memory channel layer for the servicebus alias, for this test."""
    from django.conf import settings
    from django.test import override_settings

    from servicebus.conf import get_settings

    alias = get_settings().CHANNEL_LAYER
    layers = {**getattr(settings, "CHANNEL_LAYERS", {}), alias: IN_MEMORY}
    # Overriding CHANNEL_LAYERS drops channels' cached layers, before and after.
    with override_settings(CHANNEL_LAYERS=layers):
        bus = InMemoryBus()
        try:
            yield bus
        finally:
            bus.close()


@dataclass
class Stub:
    """A stub service: its ``Service``, its canned answers, and the calls it received."""

    service: Any
    answers: dict[str, Any]
    # (method, body, request) in arrival order.
    received: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def calls(self) -> list[tuple[str, Any]]:
        """``[(method, body), ...]`` in arrival order."""
        return [(method, body) for method, body, _ in self.received]

    def calls_to(self, method: str) -> list[Any]:
        """The bodies of the calls to ``method``."""
        return [body for name, body, _ in self.received if name == method]

    def requests_to(self, method: str) -> list[Any]:
        """The ``Request`` objects of the calls to ``method`` (headers, flags, caller...)."""
        return [request for name, _, request in self.received if name == method]

    def answer(self, method: str, request: Any) -> Any:
        """Record the call, then answer it as configured."""
        self.received.append((method, copy.deepcopy(request.body), request))
        answer = self.answers[method]
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, type) and issubclass(answer, BaseException):
            raise answer()
        if callable(answer):
            return answer(request)
        return copy.deepcopy(answer)


@pytest.fixture
def stub_service(servicebus_bus: InMemoryBus) -> Callable[..., Stub]:
    """``stub_service(name, **methods) -> Stub``: serve a recording stub on the test's bus.

    Each method answers with its value (a copy), raises it if it is an exception, or
    returns ``value(request)`` if it is callable (which may raise ``ServiceError``).
    """
    from servicebus import Service

    def make(name: str, **methods: Any) -> Stub:
        if not methods:
            raise ValueError(f"stub_service({name!r}) needs at least one method=answer")
        stub = Stub(Service(name), dict(methods))
        for method in methods:
            # Async: answered on the worker's loop, no thread per call.
            async def handler(request: Any, method: str = method) -> Any:
                return stub.answer(method, request)

            stub.service.method(method)(handler)
        servicebus_bus.serve(stub.service)
        return stub

    return make


@dataclass(frozen=True)
class CapturedEvent:
    """An outbox event the test wrote: what ``publish_event`` was given."""

    id: str
    topic: str
    key: str
    payload: Any
    headers: dict[str, Any]


class EventCapture:
    """Outbox rows written while capturing, read back as they stand (rolled back: gone)."""

    def __init__(self) -> None:
        self._ids: list[tuple[str, Any]] = []  # (database alias, primary key), in order

    def _record(self, sender: Any, instance: Any, created: bool, using: str, **_: Any) -> None:
        if created:
            self._ids.append((using, instance.pk))

    @property
    def events(self) -> list[CapturedEvent]:
        """The captured events whose rows still exist, in the order they were written."""
        from servicebus.outbox.models import OutboxEvent

        rows: dict[tuple[str, str], CapturedEvent] = {}
        for using in {alias for alias, _ in self._ids}:
            keys = [pk for alias, pk in self._ids if alias == using]
            for row in OutboxEvent.objects.using(using).filter(pk__in=keys):
                event = CapturedEvent(
                    str(row.pk), row.topic, row.key, row.payload, dict(row.headers or {})
                )
                rows[(using, str(row.pk))] = event
        found = (rows.get((alias, str(pk))) for alias, pk in self._ids)
        return [event for event in found if event is not None]

    def of(self, topic: str) -> list[CapturedEvent]:
        """The captured events of one topic."""
        return [event for event in self.events if event.topic == topic]

    def __iter__(self) -> Iterator[CapturedEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


@contextlib.contextmanager
def capture_events() -> Iterator[EventCapture]:
    """Capture the outbox events written inside the block (needs ``servicebus.outbox``)."""
    from django.db.models.signals import post_save

    from servicebus.outbox.models import OutboxEvent

    capture = EventCapture()
    post_save.connect(capture._record, sender=OutboxEvent, weak=False)
    try:
        yield capture
    finally:
        post_save.disconnect(capture._record, sender=OutboxEvent)


@pytest.fixture
def captured_events() -> Iterator[EventCapture]:
    """The outbox events this test writes (rolled-back ones left out)."""
    with capture_events() as capture:
        yield capture
