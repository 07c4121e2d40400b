"""The figures each dashboard view shows, read through ``servicebus.telemetry.read``.

The one place that maps a view to the telemetry read function (which owns the data
access) and Redis errors to ``Unavailable``: pages, the JSON API and the live WebSocket
all call ``aread()`` (or ``read()`` from sync code).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.sync import async_to_sync

# Several open pages (one WebSocket each) ask for the same figures every second or two:
# within this many seconds they share one read.
CACHE_SECONDS = 1.0
# How long a service's own ``_info`` answer (method docs, schemas) may take.
INFO_TIMEOUT = 1.0
VIEWS = ("overview", "service", "trace", "failures", "events")


class Unavailable(Exception):
    """The figures cannot be read right now (the page says why and keeps trying)."""


class NotFound(Exception):
    """No such service has reported."""


def _telemetry() -> Any:
    from servicebus.telemetry import read

    return read


def _store() -> Any:
    from servicebus.telemetry.store import get_store

    store = get_store()
    if store is None:
        raise Unavailable(
            "the registry and call records live in Redis, and this project's channel "
            "layer is not a Redis layer"
        )
    return store


async def _fetch(view: str, args: dict[str, Any]) -> dict[str, Any]:
    telemetry = _telemetry()
    if view == "events":
        from channels.db import database_sync_to_async

        # Sync (the outbox's client and the database): in a thread, DB connections managed.
        result: dict[str, Any] = await database_sync_to_async(telemetry.events)()
        if result.get("error"):
            raise Unavailable(f"Redis is unavailable ({result['error']})")
        return result
    store = _store()
    if view == "overview":
        return dict(await telemetry.overview(store))
    if view == "service":
        # ask=False (the live refreshes): the figures only, no _info call every 1.5 s.
        ask = args.get("ask", True)
        result = await telemetry.service(store, args["name"], ask=ask, timeout=INFO_TIMEOUT)
        if not result.get("instances") and not result.get("info"):
            raise NotFound(args["name"])
        return dict(result)
    if view == "trace":
        return dict(await telemetry.trace(store, args["correlation_id"]))
    return {"failures": list(await telemetry.failures(store))}


_cache: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[float, dict[str, Any]]] = {}


async def aread(view: str, **args: Any) -> dict[str, Any]:
    """The figures of one view; ``Unavailable`` when Redis cannot be read."""
    if view not in VIEWS:
        raise ValueError(f"unknown dashboard view {view!r}")
    key = (view, tuple(sorted(args.items())))
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    try:
        result = await _fetch(view, args)
    except (Unavailable, NotFound, asyncio.CancelledError):
        raise
    except Exception as exc:
        if is_unavailable(exc):
            raise Unavailable(f"Redis is unavailable ({describe(exc)})") from exc
        raise
    if len(_cache) > 256:  # one entry per (view, args): traces are looked up by id
        _cache.clear()
    _cache[key] = (time.monotonic(), result)
    return result


def read(view: str, **args: Any) -> dict[str, Any]:
    """``aread`` for sync code (views): on the server's event loop when there is one."""
    return async_to_sync(aread)(view, **args)


def clear_cache() -> None:
    """Forget cached figures (tests)."""
    _cache.clear()


def is_unavailable(exc: BaseException) -> bool:
    """True for the errors of a Redis (or bus) that cannot be reached right now."""
    import redis.exceptions

    from servicebus.errors import BusUnavailable

    # OSError covers the builtin ConnectionError and TimeoutError.
    transient = (
        OSError,
        BusUnavailable,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
    )
    return isinstance(exc, transient)


def describe(exc: BaseException) -> str:
    """An error's text, short enough for a banner."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"
