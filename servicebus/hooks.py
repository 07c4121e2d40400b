"""Hooks: telemetry as middleware around dispatch and calls, never inside the transport.

A hook is any object with some of these methods (plain sync calls, a few µs each)::

    server_start(info)   before a handler runs, inside the request's own context
    server_end(info)     after the reply is built (info.duration, info.code are set)
    client_start(info)   before a request is sent; may add to info.headers (traceparent)
    client_end(info)     after the call ended (reply, error or timeout)
    dropped(reason, where, count)   messages dropped: where is "requests", "replies"
                                     or "layer"; reason e.g. "expired", "late", "malformed"

Install with ``install(hook)`` or ``SERVICEBUS["HOOKS"] = ["dotted.path", ...]`` (a class
is instantiated without arguments). A hook that raises is logged at most once a minute
and never fails a call. With no hook installed the cost is one check per call.
``builtin_methods`` maps reserved method names (``_ping``, ``_info``, ``_stats``) to
handlers every Service answers without user code.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from servicebus.metrics import metrics

if TYPE_CHECKING:
    from servicebus.request import Request

__all__ = [
    "CallInfo",
    "builtin_methods",
    "dropped",
    "install",
    "installed",
    "layer_dropped",
    "uninstall",
]

logger = logging.getLogger("servicebus.hooks")

_EVENTS = ("server_start", "server_end", "client_start", "client_end", "dropped")


class CallInfo:
    """One call as hooks see it (server side: a request handled; client side: a call made)."""

    __slots__ = (
        "caller",
        "channel",
        "code",
        "correlation_id",
        "duration",
        "headers",
        "kind",
        "method",
        "parent_id",
        "request_id",
        "service",
        "started",
        "state",
    )

    def __init__(
        self,
        kind: str,
        *,
        service: str,
        method: str,
        channel: str,
        caller: str,
        correlation_id: str,
        request_id: str,
        parent_id: str | None,
        headers: dict[str, str],
    ) -> None:
        self.kind = kind  # "server" or "client"
        self.service = service
        self.method = method
        self.channel = channel
        self.caller = caller
        self.correlation_id = correlation_id
        self.request_id = request_id
        self.parent_id = parent_id  # the request being handled when the call was made
        self.headers = headers  # outgoing (client: hooks may add) or incoming (server)
        self.started = time.time()
        self.duration = 0.0
        self.code = "ok"  # or the error code
        self.state: dict[str, Any] = {}  # for the hooks' own use

    def __repr__(self) -> str:
        return (
            f"<CallInfo {self.kind} {self.channel} {self.method} {self.code} "
            f"{self.duration * 1000:.2f} ms [{self.correlation_id}]>"
        )


# The installed hooks, and per event the bound methods to call (rebuilt on change), so the
# hot path reads one module attribute: ``hooks.enabled``.
_installed: list[Any] = []
_from_settings: tuple[tuple[str, ...], list[Any]] = ((), [])
_lock = threading.Lock()
enabled = False
server_start: tuple[Callable[[CallInfo], None], ...] = ()
server_end: tuple[Callable[[CallInfo], None], ...] = ()
client_start: tuple[Callable[[CallInfo], None], ...] = ()
client_end: tuple[Callable[[CallInfo], None], ...] = ()
_dropped: tuple[Callable[[str, str, int], None], ...] = ()


def _rebuild() -> None:
    global enabled, server_start, server_end, client_start, client_end, _dropped
    bound: dict[str, tuple[Any, ...]] = {
        event: tuple(getattr(h, event) for h in _installed if callable(getattr(h, event, None)))
        for event in _EVENTS
    }
    server_start, server_end = bound["server_start"], bound["server_end"]
    client_start, client_end = bound["client_start"], bound["client_end"]
    _dropped = bound["dropped"]
    enabled = bool(server_start or server_end or client_start or client_end)


def install(hook: Any) -> None:
    """Call ``hook``'s methods from now on (installing the same object twice is a no-op)."""
    if not any(callable(getattr(hook, event, None)) for event in _EVENTS):
        raise TypeError(f"{hook!r} has none of the hook methods {', '.join(_EVENTS)}")
    with _lock:
        if not any(h is hook for h in _installed):
            _installed.append(hook)
            _rebuild()


def uninstall(hook: Any) -> None:
    """Stop calling ``hook`` (no error when it is not installed)."""
    with _lock:
        _installed[:] = [h for h in _installed if h is not hook]
        _rebuild()


def installed() -> list[Any]:
    """The installed hooks, in call order."""
    return list(_installed)


def sync_with_settings(paths: Iterable[str]) -> None:
    """Install the hooks named in ``SERVICEBUS["HOOKS"]`` (and drop ones no longer named)."""
    global _from_settings
    from django.utils.module_loading import import_string

    wanted = tuple(paths)
    if wanted == _from_settings[0]:
        return
    previous = _from_settings[1]
    made: list[Any] = []
    # Recorded first: a hook module that reads the settings while it is imported must
    # not make this run again.
    _from_settings = (wanted, made)
    for hook in previous:
        uninstall(hook)
    for path in wanted:
        target = import_string(path)
        hook = target() if isinstance(target, type) else target
        install(hook)
        made.append(hook)


# Raising hooks: (qualified name) -> last time it was logged.
_last_logged: dict[str, float] = {}


def hook_failed(fn: Callable[..., Any], exc: BaseException) -> None:
    """Log a raising hook at most once a minute per hook method; never re-raise."""
    name = getattr(fn, "__qualname__", repr(fn))
    now = time.monotonic()
    if now - _last_logged.get(name, -3600.0) >= 60.0:
        _last_logged[name] = now
        logger.error("hook %s raised %r (logged once a minute; the call goes on)", name, exc)
    metrics.inc("hooks_failed")


def run(callbacks: tuple[Callable[[CallInfo], None], ...], info: CallInfo) -> None:
    """Call each hook method with ``info``; a raising one is logged and skipped."""
    for callback in callbacks:
        try:
            callback(info)
        except Exception as exc:
            hook_failed(callback, exc)


def dropped(reason: str, where: str, count: int = 1) -> None:
    """Count ``count`` messages dropped (counter ``<where>_<reason>``) and tell the hooks."""
    metrics.inc(f"{where}_{reason}", count)
    for callback in _dropped:
        try:
            callback(reason, where, count)
        except Exception as exc:
            hook_failed(callback, exc)


def layer_dropped(reason: str, count: int) -> None:
    """The layer's ``on_drop``: messages it dropped (expired, undecodable, ...)."""
    dropped(reason, "layer", count)


def _ping(request: Request) -> dict[str, Any]:
    return {"service": request.service, "pid": os.getpid(), "time": time.time()}


#: Reserved method name -> handler, answered by every Service on its worker's loop
#: (keep them quick and non-blocking). Telemetry adds ``_info`` and ``_stats``.
builtin_methods: dict[str, Callable[[Request], Any]] = {"_ping": _ping}


def is_reserved(name: str) -> bool:
    """Method names starting with ``_`` belong to the bus, not to user handlers."""
    return name.startswith("_")


_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})


def headers_to_inherit(headers: Mapping[str, str]) -> dict[str, str]:
    """A parent's headers for a nested call, without trace context (a hook sets its own)."""
    return {k: v for k, v in headers.items() if k.lower() not in _TRACE_HEADERS}
