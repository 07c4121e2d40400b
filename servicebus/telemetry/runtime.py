"""What a worker process runs beside its handlers: heartbeat, record flusher, /metrics.

``async with WorkerTelemetry(layer, {"inventory.request": inventory}, concurrency=64):``
around the worker's run (runworker does this; the targets are the worker's). Each
background task is supervised: an error is logged and the task restarts after a pause;
none of them can stop the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

from servicebus.conf import get_settings
from servicebus.telemetry.records import recorder
from servicebus.telemetry.registry import Heartbeat
from servicebus.telemetry.stats import stats
from servicebus.telemetry.store import Store, store_for

logger = logging.getLogger("servicebus.telemetry")


async def supervise(name: str, run: Callable[[], Awaitable[None]], pause: float = 1.0) -> None:
    """Run ``run()`` until cancelled, restarting it (after ``pause``) whenever it fails."""
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("telemetry task %s failed; restarting in %.1fs", name, pause)
            await asyncio.sleep(pause)


async def _bounded(work: Awaitable[Any], timeout: float = 5.0) -> None:
    try:
        await asyncio.wait_for(work, timeout)
    except Exception as exc:
        logger.info("telemetry shutdown step skipped: %r", exc)


class WorkerTelemetry:
    """Starts and stops a worker's telemetry tasks (see the module docstring)."""

    def __init__(
        self,
        layer: Any,
        targets: Mapping[str, Any],
        *,
        concurrency: int,
        metrics_port: str | int | None = None,
        store: Store | None = None,
        ready: asyncio.Event | None = None,
    ) -> None:
        from servicebus.service import Service
        from servicebus.telemetry.builtins import register_service

        settings = get_settings()
        # service name -> request channel, for the Services among the targets.
        services = {t.name: ch for ch, t in targets.items() if isinstance(t, Service)}
        for target in targets.values():
            if isinstance(target, Service):
                register_service(target)
        self.services = services
        self.concurrency = concurrency
        self.metrics_port = metrics_port
        self.store = store if store is not None else store_for(layer)
        self.heartbeat = (
            Heartbeat(
                self.store,
                services,
                layer=layer,
                interval=settings.HEARTBEAT_INTERVAL,
                on_backlog=stats.set_backlog,
            )
            if self.store is not None
            else None
        )
        self.record = settings.RECORD_CALLS and self.store is not None
        self._settings = settings
        # Background work starts once the worker serves (after its check of Redis passed).
        self.ready = ready
        self._tasks: list[asyncio.Task[None]] = []
        self._metrics_server: Any = None

    async def __aenter__(self) -> WorkerTelemetry:
        for name in self.services:
            stats.set_concurrency(name, self.concurrency)
        if self.metrics_port is not None:
            from servicebus.telemetry import prometheus

            self._metrics_server = prometheus.serve(self.metrics_port)
        if self.heartbeat is not None:
            self._spawn("heartbeat", self.heartbeat.run)
        if self.record and self.store is not None:
            recorder.configure(
                active=True,
                sample=self._settings.RECORD_SAMPLE,
                maxlen=self._settings.RECORD_MAXLEN,
            )
            store = self.store
            self._spawn("call-records", lambda: recorder.run(store))
        return self

    def _spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        async def when_ready() -> None:
            if self.ready is not None:
                await self.ready.wait()
            await supervise(name, run)

        task = asyncio.get_running_loop().create_task(
            when_ready(), name=f"servicebus-telemetry-{name}"
        )
        self._tasks.append(task)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        started = self.ready is None or self.ready.is_set()
        if self.record:
            recorder.configure(active=False)
        if self.store is not None and started:
            # Bounded: a Redis that is down must not hold up the worker's exit.
            if self.record:
                await _bounded(recorder.flush(self.store))
            if self.heartbeat is not None:
                await _bounded(self.heartbeat.remove())
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
