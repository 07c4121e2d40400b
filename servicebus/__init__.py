"""servicebus: a Django service bus on Channels (RPC over a Redis channel layer)."""

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

__all__ = [
    "Backpressure",
    "BadRequest",
    "BusUnavailable",
    "CallTimeout",
    "MethodNotFound",
    "PayloadTooLarge",
    "RemoteError",
    "ServiceBusError",
    "ServiceError",
]
