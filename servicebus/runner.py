"""One run/backoff/stop loop for long-running processes (worker, outbox relay, consumer).

A ``Runner`` repeats a *step* until stopped. A step returns how long to wait before the
next one (``None`` or 0: at once); an error in ``retry_on`` is logged and retried after
a jittered backoff (``servicebus.backoff.Backoff``), an error in ``fatal`` (default
``BusMisconfigured``) or any other error ends the loop by raising. SIGTERM/SIGINT (after
``install_signal_handlers()``) or ``stop()`` from any thread end it after the current step.

Sync loop (a relay)::

    runner = Runner("relay", retry_on=(DatabaseError, redis.RedisError))
    runner.install_signal_handlers()
    runner.run(lambda: 0 if publish_pending().published else POLL_INTERVAL)

Async loop (the worker's fetchers)::

    await runner.arun(fetch_once)      # fetch_once: async () -> float | None

Several loops may share one runner (one stop for all); each loop has its own backoff.
``await runner.aretry(connect)`` calls ``connect()`` until it succeeds (e.g. a startup check).
``runner.wait(seconds)`` / ``await runner.wait_async(seconds)`` sleep until the time is up
or the runner stops (True when stopped). ``run_async_main`` runs a coroutine on uvloop
when it is installed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from servicebus.backoff import Backoff
from servicebus.errors import BusMisconfigured

T = TypeVar("T")

logger = logging.getLogger("servicebus.runner")

Step = Callable[[], float | None]
AsyncStep = Callable[[], Awaitable[float | None]]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when installed (``servicebus[fast]``), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_async_main(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop when it is installed."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # a sync loop: no event loop in this thread
        return None


class Runner:
    """Repeats steps until stopped, with backoff on retryable errors (see module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        retry_on: tuple[type[BaseException], ...] = (),
        fatal: tuple[type[BaseException], ...] = (BusMisconfigured,),
        initial_backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        self.name = name
        self.retry_on = retry_on
        self.fatal = fatal
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.failures = 0  # retried errors so far (all loops)
        self._stopped = threading.Event()
        # asyncio waiters: one event per loop that waits, set thread-safely by stop().
        self._async_events: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}
        self._lock = threading.Lock()

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called (or a stop signal arrived)."""
        return self._stopped.is_set()

    def stop(self) -> None:
        """End every loop of this runner after its current step (any thread, signal-safe)."""
        self._stopped.set()
        with self._lock:
            events = list(self._async_events.items())
        for loop, event in events:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if loop is running:
                event.set()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT call ``stop()`` (on the running loop if any, else the process)."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            if loop is not None:
                try:
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    continue
                except (NotImplementedError, RuntimeError):  # pragma: no cover - not main thread
                    pass
            try:
                signal.signal(sig, lambda signum, frame: self._on_signal(signal.Signals(signum)))
            except ValueError:  # pragma: no cover - not the main thread
                pass

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("%s: received %s, stopping", self.name, sig.name)
        self.stop()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` (less if stopped); True when the runner is stopping."""
        return self._stopped.wait(seconds)

    def _event(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        with self._lock:
            event = self._async_events.get(loop)
            if event is None:
                event = self._async_events[loop] = asyncio.Event()
        if self._stopped.is_set():
            event.set()
        return event

    async def wait_async(self, seconds: float | None = None) -> bool:
        """Sleep up to ``seconds`` (None: until stopped); True when the runner is stopping."""
        event = self._event()
        if not event.is_set():
            try:
                await asyncio.wait_for(event.wait(), seconds)
            except TimeoutError:
                pass
        return self._stopped.is_set()

    def _failed(
        self,
        exc: BaseException,
        backoff: Backoff,
        retry_on: tuple[type[BaseException], ...] | None = None,
    ) -> float:
        """The delay before retrying after ``exc`` (counted, logged), or raise it: fatal,
        not in ``retry_on`` (default: the runner's), or our own cancellation come back."""
        retryable = self.retry_on if retry_on is None else retry_on
        if isinstance(exc, self.fatal) or not isinstance(exc, retryable):
            raise exc
        task = _current_task()
        if task is not None and task.cancelling():
            # Our cancellation came back as another error: stop, do not retry.
            raise asyncio.CancelledError() from exc
        self.failures += 1
        delay = backoff.next()
        logger.warning("%s: %s; retrying in %.2fs", self.name, exc, delay)
        return delay

    def run(self, step: Step) -> None:
        """Call ``step()`` until stopped (blocking); see the module docstring."""
        backoff = Backoff(self.initial_backoff, self.max_backoff)
        while not self._stopped.is_set():
            try:
                pause = step()
                backoff.reset()
            except Exception as exc:
                pause = self._failed(exc, backoff)
            if pause and self._stopped.wait(pause):
                return

    async def aretry(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        retry_on: tuple[type[BaseException], ...] | None = None,
    ) -> tuple[T] | None:
        """Await ``attempt()`` until it succeeds: ``(result,)``, or None if stopped first.

        Errors in ``retry_on`` (default: the runner's) are logged and retried with backoff.
        """
        backoff = Backoff(self.initial_backoff, self.max_backoff)
        while not self._stopped.is_set():
            try:
                return (await attempt(),)
            except Exception as exc:
                delay = self._failed(exc, backoff, retry_on)
            if await self.wait_async(delay):
                break
        return None

    async def arun(self, step: AsyncStep) -> None:
        """Await ``step()`` until stopped; see the module docstring."""
        backoff = Backoff(self.initial_backoff, self.max_backoff)
        while not self._stopped.is_set():
            try:
                pause = await step()
                backoff.reset()
            except Exception as exc:
                pause = self._failed(exc, backoff)
            if pause and await self.wait_async(pause):
                return
