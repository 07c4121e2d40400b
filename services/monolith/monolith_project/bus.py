"""``call()`` with the signature of ``servicebus.call``, running the handler in-process.

What a monolith does: the same handler functions, the same Request they read, the same
ServiceError on failure, but a plain function call in the caller's thread. Bodies are
checked against the declared types as a worker would (servicebus.typed).
"""

from __future__ import annotations

import importlib
import time
import uuid
from typing import Any

from servicebus import Request, typed
from servicebus.context import current_edge

# Channel -> (module, the Service in it); its handlers are module functions named as methods.
SERVICES = {
    "inventory.request": ("inventory.service", "inventory"),
    "pricing.request": ("pricing.service", "pricing"),
    "orders.request": ("orders.service", "orders"),
}


def call(channel: str, method: str, body: Any = None, *, timeout: float = 5.0, **_: Any) -> Any:
    """Run ``method`` of the service on ``channel`` here and return its reply body."""
    module_name, service_name = SERVICES[channel]
    module = importlib.import_module(module_name)
    declared = getattr(module, service_name).body_types.get(method)
    edge = current_edge()
    request = Request(
        method=method,
        body=typed.validate(declared, body) if declared is not None else body,
        correlation_id=(edge.correlation_id if edge else None) or uuid.uuid4().hex,
        deadline=time.time() + timeout,
        headers=edge.headers if edge else {},
        flags=edge.flags if edge else frozenset(),
        caller="orders",
        service=service_name,
    )
    return getattr(module, method)(request)
