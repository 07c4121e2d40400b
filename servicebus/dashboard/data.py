"""The figures each dashboard view shows, read through ``servicebus.telemetry.read``.

One place maps a view name to the telemetry read function and Redis errors to
``Unavailable``; pages, the JSON API and the live WebSocket all call ``read()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

# Several open pages (one WebSocket each) ask for the same figures every second or two:
# within this many seconds they share one read.
CACHE_SECONDS = 1.0
VIEWS = ("overview", "service", "trace", "failures", "events")


class Unavailable(Exception):
    """The bus's Redis cannot be read right now (the page says so and keeps trying)."""


class NotFound(Exception):
    """No such service, or no recorded call with that correlation ID."""


def _reader(view: str) -> Callable[..., dict[str, Any]]:
    from servicebus.telemetry import read as telemetry

    return {
        "overview": telemetry.overview,
        "service": telemetry.service,
        "trace": telemetry.trace,
        "failures": telemetry.failures,
        "events": telemetry.events,
    }[view]


_cache: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[float, dict[str, Any]]] = {}
_lock = threading.Lock()


def read(view: str, **args: Any) -> dict[str, Any]:
    """The figures of one view; ``Unavailable`` when Redis cannot be read."""
    if view not in VIEWS:
        raise ValueError(f"unknown dashboard view {view!r}")
    key = (view, tuple(sorted(args.items())))
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    try:
        result = _reader(view)(**args)
    except (NotFound, ValueError):
        raise
    except Exception as exc:
        if _is_unavailable(exc):
            raise Unavailable(_describe(exc)) from exc
        raise
    with _lock:
        if len(_cache) > 256:  # one entry per (view, args): traces are looked up by id
            _cache.clear()
        _cache[key] = (now, result)
    return result


def clear_cache() -> None:
    """Forget cached figures (tests)."""
    with _lock:
        _cache.clear()


def _is_unavailable(exc: BaseException) -> bool:
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


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"
