"""Handlers registered for topics with ``@subscriber("topic")``."""

from __future__ import annotations

from collections.abc import Callable

from servicebus.outbox.codec import Event

Handler = Callable[[Event], None]

_handlers: dict[str, list[Handler]] = {}


def subscriber(topic: str) -> Callable[[Handler], Handler]:
    """Register a function ``handler(event)`` for a topic; it runs in the consumer's transaction."""

    def register(handler: Handler) -> Handler:
        handlers = _handlers.setdefault(topic, [])
        if handler not in handlers:
            handlers.append(handler)
        return handler

    return register


def handlers_for(topic: str) -> list[Handler]:
    """The handlers of a topic, in registration order."""
    return list(_handlers.get(topic, ()))


def topics() -> list[str]:
    """Every topic with at least one handler."""
    return sorted(t for t, hs in _handlers.items() if hs)


def unregister(topic: str, handler: Handler | None = None) -> None:
    """Remove one handler of a topic, or all of them (tests use this)."""
    if handler is None:
        _handlers.pop(topic, None)
    elif handler in _handlers.get(topic, []):
        _handlers[topic].remove(handler)
