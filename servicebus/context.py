"""The request being handled, carried by context variables.

Nested calls read it to inherit the correlation ID, headers, flags and deadline; the
outbox reads it to stamp events with the correlation ID; log records read it too.
At an edge (an HTTP view, a management command) ``bind()`` sets the same values
before any bus request exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servicebus.request import Request


@dataclass(frozen=True)
class EdgeContext:
    """What an edge binds for the calls it makes: correlation ID, headers, flags."""

    correlation_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()


_current: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "servicebus_request", default=None
)
_edge: contextvars.ContextVar[EdgeContext | None] = contextvars.ContextVar(
    "servicebus_edge", default=None
)
# The worker loop a sync handler's thread belongs to: its sync call()s run there rather
# than on the bridge, so one loop (and one in-memory layer) serves the whole chain.
_handler_loop: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "servicebus_handler_loop", default=None
)


def current_request() -> Request | None:
    """The request this code runs on behalf of, or None outside a handler."""
    return _current.get()


def enter_request(request: Request | None) -> contextvars.Token[Request | None]:
    """Make ``request`` current (a worker, before its handler runs); undo with ``leave_request``."""
    return _current.set(request)


def leave_request(token: contextvars.Token[Request | None]) -> None:
    """Undo ``enter_request``."""
    _current.reset(token)


def handler_loop() -> asyncio.AbstractEventLoop | None:
    """The worker loop of the sync handler running in this thread, or None."""
    return _handler_loop.get()


def sync_handler_context(loop: asyncio.AbstractEventLoop) -> contextvars.Context:
    """A copy of the current context for a sync handler's thread, bound to worker ``loop``."""
    token = _handler_loop.set(loop)
    try:
        return contextvars.copy_context()
    finally:
        _handler_loop.reset(token)


def current_edge() -> EdgeContext | None:
    """What the nearest edge bound with ``bind()``, or None."""
    return _edge.get()


def current_correlation_id() -> str | None:
    """The correlation ID in scope: the current request's, else the edge's, else None."""
    request = _current.get()
    if request is not None:
        return request.correlation_id
    edge = _edge.get()
    return edge.correlation_id if edge is not None else None


@contextlib.contextmanager
def bind(
    correlation_id: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    flags: Iterable[str] | None = None,
) -> Iterator[EdgeContext]:
    """Make calls inside the block carry this correlation ID, these headers and flags.

    Inside a handler it starts a new edge: calls keep the request's correlation ID,
    headers and flags (unless given) but are no longer capped by its deadline.
    """
    merged_headers = dict(headers or {})
    merged_flags = frozenset(flags or ())
    request = _current.get()
    if request is not None:
        # E.g. a saga's compensations must run even when the step that failed used up
        # the request's time; they still belong to the same chain of calls.
        correlation_id = correlation_id or request.correlation_id
        merged_headers = {**request.headers, **merged_headers}
        merged_flags = request.flags | merged_flags
    edge = EdgeContext(correlation_id, merged_headers, merged_flags)
    edge_token = _edge.set(edge)
    request_token = _current.set(None)
    try:
        yield edge
    finally:
        _current.reset(request_token)
        _edge.reset(edge_token)


class CorrelationIdFilter(logging.Filter):
    """Adds ``record.correlation_id`` (``-`` when none) so log formats can print it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = current_correlation_id() or "-"
        return True
