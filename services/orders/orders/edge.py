"""The HTTP edge: where a request gets the correlation ID and feature flags its bus
calls carry (``X-Request-ID``, ``X-Feature-Flags``)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse

import servicebus

logger = logging.getLogger("orders.http")

# Short and printable: it ends up in every log line of every service.
# Exact and ASCII-only (fullmatch): `$` would let a trailing newline into the logs.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+=-]{1,64}", re.ASCII)
FLAG = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)
MAX_FLAGS = 32

# Django runs every sync view of an ASGI process on one shared thread, so each order
# would wait for the one before it. Bus views run in this pool instead, side by side.
_views = ThreadPoolExecutor(max_workers=32, thread_name_prefix="orders-view")


def request_id(request: HttpRequest) -> str:
    """The caller's X-Request-ID when it is valid, else a new one."""
    given = request.headers.get("X-Request-ID", "")
    return given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def feature_flags(request: HttpRequest) -> frozenset[str]:
    """Flags from the comma-separated X-Feature-Flags header (invalid names ignored)."""
    names = (name.strip() for name in request.headers.get("X-Feature-Flags", "").split(","))
    return frozenset(sorted(name for name in names if FLAG.fullmatch(name))[:MAX_FLAGS])


def bus_view(view: Callable[..., HttpResponse]) -> Callable[..., Awaitable[HttpResponse]]:
    """Run a sync view in a pooled thread with the request's correlation ID and flags bound.

    Every ``servicebus.call`` inside carries them; the response echoes X-Request-ID.
    """

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        cid = request_id(request)
        flags = feature_flags(request)

        def run() -> HttpResponse:
            # What Django's request cycle does for its own thread, for ours.
            close_old_connections()
            started = time.perf_counter()
            try:
                with servicebus.bind(cid, flags=flags):
                    logger.info("%s %s flags=%s", request.method, request.path, sorted(flags))
                    response = view(request, *args, **kwargs)
                    ms = (time.perf_counter() - started) * 1000
                    logger.info(
                        "%s %s -> %d in %.1f ms",
                        request.method,
                        request.path,
                        response.status_code,
                        ms,
                    )
            finally:
                close_old_connections()
            # Logged above with the correlation ID; spare django.request's untagged copy.
            response._has_been_logged = True  # type: ignore[attr-defined]
            return response

        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(_views, contextvars.copy_context().run, run)
        response["X-Request-ID"] = cid
        return response

    return wrapper
