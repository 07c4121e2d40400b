"""Handlers registered for topics with ``@subscriber("topic")``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from servicebus.outbox.codec import Event
from servicebus.telemetry import tracing

Handler = Callable[[Event], None]
BatchHandler = Callable[[list[Event]], None]

# topic -> [(handler, takes a list of events)]
_handlers: dict[str, list[tuple[Callable[..., Any], bool]]] = {}


def subscriber(topic: str, *, batch: bool = False) -> Callable[[Any], Any]:
    """Register ``handler(event)`` for a topic, or ``handler(events)`` with ``batch=True``.

    Handlers run inside the consumer's database transaction; a batch handler gets the
    new events of one read, in stream order, and must treat them as one unit.
    """

    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        entries = _handlers.setdefault(topic, [])
        if all(fn is not handler for fn, _ in entries):
            entries.append((handler, batch))
        return handler

    return register


def run_handlers(topic: str, events: list[Event]) -> None:
    """Run every handler of the topic on these events (batch handlers once, others per event)."""
    for fn, batch in list(_handlers.get(topic, ())):
        if batch:
            with tracing.consuming(topic, events):
                fn(events)
        else:
            for event in events:
                with tracing.consuming(topic, [event]):
                    fn(event)


def topics() -> list[str]:
    """Every topic with at least one handler."""
    return sorted(t for t, hs in _handlers.items() if hs)


def unregister(topic: str, handler: Callable[..., Any] | None = None) -> None:
    """Remove one handler of a topic, or all of them (tests use this)."""
    if handler is None:
        _handlers.pop(topic, None)
    else:
        _handlers[topic] = [(fn, b) for fn, b in _handlers.get(topic, []) if fn is not handler]
