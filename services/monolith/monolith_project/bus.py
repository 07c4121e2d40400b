"""``call()`` with the signature of ``servicebus.call``, running the handler in-process.

What a monolith does: the same handler functions, the same Request they read, the same
ServiceError on failure, but a plain function call in the caller's thread.
"""

from __future__ import annotations

import importlib
import time
import uuid
from typing import Any

from servicebus import Request
from servicebus.context import current_edge

# Channel -> the module whose functions are that service's handlers (named as methods).
MODULES = {
    "inventory.request": "inventory.service",
    "pricing.request": "pricing.service",
    "orders.request": "orders.service",
}


def call(channel: str, method: str, body: Any = None, *, timeout: float = 5.0, **_: Any) -> Any:
    """Run ``method`` of the service on ``channel`` here and return its reply body."""
    handler = getattr(importlib.import_module(MODULES[channel]), method)
    edge = current_edge()
    request = Request(
        method=method,
        body=body,
        correlation_id=(edge.correlation_id if edge else None) or uuid.uuid4().hex,
        deadline=time.time() + timeout,
        headers=edge.headers if edge else {},
        flags=edge.flags if edge else frozenset(),
        caller="orders",
        service=channel.partition(".")[0],
    )
    return handler(request)
