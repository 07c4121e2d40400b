"""The HTTP edge: where a request gets the correlation ID and feature flags its bus
calls carry (``X-Request-ID``, ``X-Feature-Flags``)."""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse

import servicebus

logger = logging.getLogger("orders.http")
T = TypeVar("T")

# Exact and ASCII-only (fullmatch): `$` would let a trailing newline into the logs.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+=-]{1,64}", re.ASCII)
FLAG = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)
MAX_FLAGS = 32


def request_id(request: HttpRequest) -> str:
    """The caller's X-Request-ID when it is valid, else a new one."""
    given = request.headers.get("X-Request-ID", "")
    return given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def feature_flags(request: HttpRequest) -> frozenset[str]:
    """Flags from the comma-separated X-Feature-Flags header (invalid names ignored)."""
    names = (name.strip() for name in request.headers.get("X-Feature-Flags", "").split(","))
    return frozenset(sorted(name for name in names if FLAG.fullmatch(name))[:MAX_FLAGS])


def edge(view: Callable[..., Awaitable[HttpResponse]]) -> Callable[..., Awaitable[HttpResponse]]:
    """Wrap an async view: bind the request's correlation ID and flags, log one line.

    Every bus call inside carries them; the response echoes X-Request-ID.
    """

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        cid = request_id(request)
        flags = feature_flags(request)
        started = time.perf_counter()
        with servicebus.bind(cid, flags=flags):
            response = await view(request, *args, **kwargs)
            logger.info(
                "%s %s -> %d in %.1f ms%s",
                request.method,
                request.path,
                response.status_code,
                (time.perf_counter() - started) * 1000,
                f" flags={sorted(flags)}" if flags else "",
            )
        # Logged above with the correlation ID; spare django.request's untagged copy.
        response._has_been_logged = True  # type: ignore[attr-defined]
        response["X-Request-ID"] = cid
        return response

    return wrapper


def db(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """``fn`` (ORM code) for an async view: ``sync_to_async(thread_sensitive=False)``.

    It runs on the event loop's executor, whose threads live on, so their database
    connections persist (CONN_MAX_AGE); a thread-sensitive call would get a new thread,
    and so a new connection, per request under ASGI.
    """

    def run(*args: Any, **kwargs: Any) -> T:
        # What Django's request_started signal does for the request's own thread, for
        # this one: drop a connection that broke or outlived CONN_MAX_AGE before use.
        close_old_connections()
        return fn(*args, **kwargs)

    return sync_to_async(run, thread_sensitive=False)
