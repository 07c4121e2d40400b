"""The servicebus error tree; every error a caller can see has one root.

    ServiceBusError                  root: catch this to catch everything below
    ├── CallTimeout                  no reply before the deadline
    ├── Backpressure                 the request channel is at capacity (raised at once)
    ├── BusUnavailable               Redis (the channel layer) cannot be reached: retry
    │   └── BusMisconfigured         fatal: credentials, TLS, Redis version, no such layer
    ├── BadRequest                   malformed envelope or body, or one that cannot be sent
    │   └── PayloadTooLarge          the encoded body is over the size limit
    ├── RemoteError                  the handler failed; .code, .message, .details
    │   └── MethodNotFound           the service has no such method
    ├── ServiceError                 raised *by handlers* for expected failures
    └── OutboxError                  durable events (servicebus.outbox.errors): UndecodableEvent,
                                     ReplicationConfigError, DumpFormatError, ConsumerConfigError

Errors cross the wire as data (code, message, details) and are rebuilt at the caller
only from an allow-list (``rebuild_error``): a remote peer can never make the caller
instantiate an arbitrary class.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Backpressure",
    "BadRequest",
    "BusMisconfigured",
    "BusUnavailable",
    "CallTimeout",
    "MethodNotFound",
    "PayloadTooLarge",
    "RemoteError",
    "ServiceBusError",
    "ServiceError",
    "rebuild_error",
]


class ServiceBusError(Exception):
    """Root of every error servicebus raises."""

    code = "servicebus_error"
    hint = ""

    def __init__(self, message: str = "", *, code: str | None = None, details: Any = None) -> None:
        self.message = message or self.hint or self.__class__.__name__
        if code is not None:
            self.code = code
        self.details = details
        super().__init__(self.message)

    def __str__(self) -> str:
        if self.hint and self.hint not in self.message:
            return f"{self.message} ({self.hint})"
        return self.message

    def to_wire(self) -> dict[str, Any]:
        """The error as data, the way it crosses the bus in a reply."""
        return {"code": self.code, "message": self.message, "details": self.details}


class CallTimeout(ServiceBusError):
    """No reply arrived before the call's deadline."""

    code = "timeout"
    hint = (
        "the service may be down, overloaded or slow: check its runworker is running, "
        "or raise the timeout; the bus never retries a request"
    )


class Backpressure(ServiceBusError):
    """The request channel is full: the service is behind; nothing was sent."""

    code = "backpressure"
    hint = "the service is overloaded: retry later with backoff, or add workers"


class BusUnavailable(ServiceBusError):
    """The channel layer (Redis) could not be reached."""

    code = "unavailable"
    hint = "check that Redis is running and CHANNEL_LAYERS points at it"


class BusMisconfigured(BusUnavailable):
    """The channel layer refused us for a reason no retry can fix (auth, TLS, version)."""

    code = "misconfigured"
    hint = (
        "fix CHANNEL_LAYERS (password or ACL user, TLS settings, a Redis >= 7.0): "
        "retrying will not help"
    )


class BadRequest(ServiceBusError):
    """The request is malformed or cannot be encoded; fix the caller."""

    code = "bad_request"


class PayloadTooLarge(BadRequest):
    """The encoded body is larger than the configured limit."""

    code = "payload_too_large"
    hint = (
        "send a reference (a key or URL) instead of the data, or raise SERVICEBUS['MAX_BODY_SIZE']"
    )


class RemoteError(ServiceBusError):
    """The remote handler failed; ``code`` says how (``internal`` for a crash)."""

    code = "internal"

    def __init__(self, code: str, message: str = "", details: Any = None) -> None:
        super().__init__(message or code, code=code, details=details)

    def __reduce__(self) -> Any:
        return (self.__class__, (self.code, self.message, self.details))


class MethodNotFound(RemoteError):
    """The service has no method of that name."""

    code = "method_not_found"

    def __init__(
        self, code: str = "method_not_found", message: str = "", details: Any = None
    ) -> None:
        super().__init__(code, message or "no such method", details)


class ServiceError(ServiceBusError):
    """Raise in a handler for an expected failure; the caller gets a RemoteError with ``code``."""

    def __init__(self, code: str, message: str = "", details: Any = None) -> None:
        super().__init__(message or code, code=code, details=details)


# Codes that rebuild as a specific class at the caller; every other code is a plain
# RemoteError. Never look classes up by a name taken from the wire.
_REMOTE_CLASSES: dict[str, type[ServiceBusError]] = {
    MethodNotFound.code: MethodNotFound,
    BadRequest.code: BadRequest,
    PayloadTooLarge.code: PayloadTooLarge,
}


def rebuild_error(data: Any) -> ServiceBusError:
    """Turn an error received as data into an exception, from an allow-list only."""
    if not isinstance(data, dict):
        return RemoteError("internal", "malformed error in reply", {"raw": repr(data)[:200]})
    code = data.get("code")
    code = code if isinstance(code, str) and code else "internal"
    message = data.get("message")
    message = message if isinstance(message, str) else code
    details = data.get("details")
    cls = _REMOTE_CLASSES.get(code)
    if cls is MethodNotFound:
        return MethodNotFound(code, message, details)
    if cls is not None:
        return cls(message, details=details)
    return RemoteError(code, message, details)
