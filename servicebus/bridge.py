"""The sync bridge: one long-lived event loop thread per process for ``call()``.

``async_to_sync`` opens a new event loop (and so a new Redis connection) per call; the
bridge keeps one loop, its connections and its reply listener for the life of the
process, and any thread submits calls to it.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from servicebus.client import acall, check_timeout
from servicebus.conf import get_settings
from servicebus.context import handler_loop
from servicebus.runner import new_event_loop

T = TypeVar("T")


class Bridge:
    """A daemon thread running an event loop that sync code submits coroutines to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The bridge's loop, started on first use (and again in a forked child)."""
        loop = self._loop
        if loop is not None and self._pid == os.getpid() and not loop.is_closed():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
                started = threading.Event()
                loop = new_event_loop()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="servicebus-bridge", daemon=True)
                thread.start()
                started.wait()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the bridge loop; contextvars of the caller travel with it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the bridge loop and block for its result."""
        return self.submit(coro).result(timeout)

    def stop(self) -> None:
        """Stop the loop thread (at exit, or in tests)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)


bridge = Bridge()
atexit.register(bridge.stop)


def call(
    channel: str,
    method: str,
    body: Any = None,
    *,
    timeout: float | None = None,
    headers: Mapping[str, str] | None = None,
    flags: Iterable[str] | None = None,
) -> Any:
    """Sync ``acall`` for views, commands and threads; same arguments, same errors."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "servicebus.call() blocks; in async code (a running event loop) use "
            "`await servicebus.acall(...)` instead"
        )
    wait = get_settings().DEFAULT_TIMEOUT if timeout is None else check_timeout(timeout)
    coro = acall(channel, method, body, timeout=timeout, headers=headers, flags=flags)
    loop = handler_loop()
    if loop is not None and loop.is_running():
        # A sync handler's thread: its worker loop is free while the handler runs.
        future = asyncio.run_coroutine_threadsafe(coro, loop)
    else:
        future = bridge.submit(coro)
    # acall enforces the deadline itself; the margin only guards against a wedged loop.
    return future.result(wait + 5.0)
