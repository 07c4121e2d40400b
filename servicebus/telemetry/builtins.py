"""Bodies of the reserved methods every Service answers without user code.

``_ping`` (who is there), ``_info`` (what it offers), ``_stats`` (how it is doing), as NATS
micro's ``$SRV.PING/INFO/STATS``. The dispatcher finds them in
``servicebus.hooks.builtin_methods``; each is a cheap sync ``fn(request) -> body``. The
Service objects are found by name: ``register_service`` (the worker runtime registers the
services it serves).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from servicebus import typed
from servicebus.telemetry.identity import HOST, VERSION, instance_id
from servicebus.telemetry.stats import stats

if TYPE_CHECKING:
    from servicebus.request import Request
    from servicebus.service import Service

Builtin = Callable[["Request"], Any]

_services: dict[str, Service] = {}


def register_service(service: Service) -> None:
    """Let ``_info`` describe ``service``'s methods."""
    _services[service.name] = service


def ping(request: Request) -> dict[str, Any]:
    """``_ping``: the service's name and this instance's id."""
    return {"service": request.service, "instance": instance_id()}


def _first_doc_line(fn: Any) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _schema(tp: Any) -> dict[str, Any] | None:
    # A type check_type accepted always has a schema; should one not, _info still answers.
    try:
        return typed.schema(tp)
    except Exception:
        return None


def _schemas(service: Service, method: str) -> tuple[Any, Any]:
    """JSON Schemas of the method's declared body and return types (None where undeclared)."""
    return (
        _schema(service.body_types.get(method)),
        _schema(service.return_types.get(method)),
    )


def describe_methods(service: Service | None) -> list[dict[str, Any]]:
    """Each user method: name, first docstring line, request and response JSON Schemas."""
    out: list[dict[str, Any]] = []
    if service is None:
        return out
    for name, handler in sorted(service.handlers.items()):
        request_schema, response_schema = _schemas(service, name)
        out.append(
            {
                "name": name,
                "doc": _first_doc_line(handler),
                "request_schema": request_schema,
                "response_schema": response_schema,
            }
        )
    return out


def info(request: Request) -> dict[str, Any]:
    """``_info``: identity, version and the service's methods with docs and schemas."""
    return {
        "service": request.service,
        "instance": instance_id(),
        "host": HOST,
        "pid": os.getpid(),
        "version": VERSION,
        "methods": describe_methods(_services.get(request.service)),
    }


def stats_body(request: Request) -> dict[str, Any]:
    """``_stats``: this instance's counts by code, p50/p99, in-flight, concurrency, uptime."""
    return stats.snapshot(request.service)


BUILTINS: dict[str, Builtin] = {"_ping": ping, "_info": info, "_stats": stats_body}
