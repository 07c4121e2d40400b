"""servicebus: a Django service bus on Channels (RPC over a Redis channel layer).

Durable events (``publish_event``, ``subscriber``, ``Event``) live in ``servicebus.outbox``,
which needs Django's ORM: they are imported on first use, so ``import servicebus`` stays
free of ``django.db`` and the outbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from servicebus.bridge import call
from servicebus.client import acall
from servicebus.context import bind, current_correlation_id, current_request
from servicebus.errors import (
    Backpressure,
    BadRequest,
    BusMisconfigured,
    BusUnavailable,
    CallTimeout,
    MethodNotFound,
    PayloadTooLarge,
    RemoteError,
    ServiceBusError,
    ServiceError,
)
from servicebus.request import Request
from servicebus.service import Service

if TYPE_CHECKING:
    from servicebus.outbox.codec import Event
    from servicebus.outbox.publisher import publish_event
    from servicebus.outbox.registry import subscriber

__all__ = [
    "Backpressure",
    "BadRequest",
    "BusMisconfigured",
    "BusUnavailable",
    "CallTimeout",
    "Event",
    "MethodNotFound",
    "PayloadTooLarge",
    "RemoteError",
    "Request",
    "Service",
    "ServiceBusError",
    "ServiceError",
    "acall",
    "bind",
    "call",
    "current_correlation_id",
    "current_request",
    "publish_event",
    "subscriber",
]

# Public name -> module of the outbox that defines it (imported on first access).
_OUTBOX_NAMES = {
    "Event": "servicebus.outbox.codec",
    "publish_event": "servicebus.outbox.publisher",
    "subscriber": "servicebus.outbox.registry",
}


def __getattr__(name: str) -> Any:
    module = _OUTBOX_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'servicebus' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
