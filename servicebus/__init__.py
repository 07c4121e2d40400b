"""servicebus: a Django service bus on Channels (RPC over a Redis channel layer)."""

from servicebus.bridge import call
from servicebus.client import acall
from servicebus.context import bind, current_correlation_id, current_request
from servicebus.errors import (
    Backpressure,
    BadRequest,
    BusUnavailable,
    CallTimeout,
    MethodNotFound,
    PayloadTooLarge,
    RemoteError,
    ServiceBusError,
    ServiceError,
)
from servicebus.outbox.codec import Event
from servicebus.outbox.publisher import publish_event
from servicebus.outbox.registry import subscriber
from servicebus.request import Request
from servicebus.service import Service

__all__ = [
    "Backpressure",
    "BadRequest",
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
