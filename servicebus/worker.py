"""The worker: serves request channels with bounded concurrency and drains on stop.

It takes messages from the layer only for free slots, so a backlog stays in Redis,
where the channel's capacity turns it into Backpressure for callers. With a layer that
has ``receive_many`` (servicebus's RedisChannelLayer) k free slots cost one round trip.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from servicebus.conf import get_settings
from servicebus.metrics import metrics
from servicebus.service import Service, ServiceConsumer

logger = logging.getLogger("servicebus.worker")

Target = Service | Callable[..., Awaitable[None]]


def resolve_targets(application: Any, channels: list[str]) -> dict[str, Target]:
    """Find what serves each channel in an ASGI app (ProtocolTypeRouter/ChannelNameRouter)."""
    targets: dict[str, Target] = {}
    app = application
    mapping = getattr(app, "application_mapping", None)
    if isinstance(mapping, Mapping) and "channel" in mapping:
        app = mapping["channel"]
    by_name = getattr(app, "application_mapping", None)
    for channel in channels:
        target: Any = by_name.get(channel) if isinstance(by_name, Mapping) else app
        if target is None:
            raise ValueError(f"no application routes channel {channel!r}; check ASGI_APPLICATION")
        targets[channel] = target.service if isinstance(target, ServiceConsumer) else target
    return targets


class Slots:
    """Counts free handler slots; fetchers reserve slots before they take messages."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._changed = asyncio.Event()

    async def reserve(self, at_most: int) -> int:
        """Wait for a free slot, then reserve up to ``at_most`` of them."""
        while self.free <= 0:
            self._changed.clear()
            await self._changed.wait()
        taken = min(self.free, max(1, at_most))
        self.free -= taken
        return taken

    def release(self, count: int = 1) -> None:
        """Give ``count`` slots back."""
        self.free += count
        self._changed.set()


class Worker:
    """Serve ``targets`` (channel -> Service or ASGI app) from ``layer`` until stopped."""

    def __init__(
        self,
        layer: Any,
        targets: Mapping[str, Target],
        *,
        concurrency: int | None = None,
        drain_timeout: float | None = None,
        max_batch: int | None = None,
    ) -> None:
        settings = get_settings()
        if not targets:
            raise ValueError("a worker needs at least one channel")
        self.layer = layer
        self.targets = dict(targets)
        self.concurrency = concurrency or settings.WORKER_CONCURRENCY
        self.drain_timeout = settings.DRAIN_TIMEOUT if drain_timeout is None else drain_timeout
        self.poll = settings.RECEIVE_POLL
        self.max_batch = max_batch or settings.WORKER_BATCH
        self.executor = ThreadPoolExecutor(
            self.concurrency, thread_name_prefix="servicebus-handler"
        )
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._asgi_queues: dict[str, asyncio.Queue[Any]] = {}
        self.started = asyncio.Event()

    def stop(self) -> None:
        """Stop taking messages; ``run()`` returns once in-flight requests are answered."""
        self._stopping.set()

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        return len(self._tasks)

    async def run(self) -> None:
        """Serve until ``stop()``; then finish in-flight requests (up to drain_timeout)."""
        slots = Slots(self.concurrency)
        share = max(1, min(self.max_batch, self.concurrency // len(self.targets)))
        fetchers = [
            asyncio.create_task(self._fetch(channel, target, slots, share), name=f"fetch-{channel}")
            for channel, target in self.targets.items()
        ]
        logger.info(
            "worker serving %s with concurrency %d", ", ".join(self.targets), self.concurrency
        )
        self.started.set()
        try:
            await self._stopping.wait()
        finally:
            self._stopping.set()
            # Fetchers notice the stop within one receive poll and take nothing more.
            await asyncio.wait(fetchers, timeout=self.poll + 5)
            for task in fetchers:
                task.cancel()
            await self._drain()
            self.executor.shutdown(wait=False, cancel_futures=False)

    async def _drain(self) -> None:
        if self._tasks:
            logger.info("draining %d in-flight request(s)", len(self._tasks))
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.drain_timeout)
            if pending:
                logger.warning(
                    "%d request(s) still running after %.1fs; abandoning them",
                    len(pending),
                    self.drain_timeout,
                )
                for task in pending:
                    task.cancel()
        logger.info("worker stopped; counters %s", metrics.snapshot())

    async def _take(self, channel: str, count: int) -> list[Any]:
        receive_many = getattr(self.layer, "receive_many", None)
        if receive_many is not None:
            return list(await receive_many(channel, count, timeout=self.poll))
        # A plain layer has no timed receive: race it against stop() and cancel it then
        # (channels' layers are built to lose nothing when a receive is cancelled).
        receive = asyncio.ensure_future(self.layer.receive(channel))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not receive.done():
                receive.cancel()
        # A receive cancelled just now may not have finished cancelling yet.
        if not receive.done() or receive.cancelled():
            return []
        return [receive.result()]

    async def _fetch(self, channel: str, target: Target, slots: Slots, share: int) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            reserved = await slots.reserve(share)
            if self._stopping.is_set():
                slots.release(reserved)
                return
            try:
                messages = await self._take(channel, reserved)
                backoff = 0.1
            except asyncio.CancelledError:
                slots.release(reserved)
                raise
            except Exception as exc:
                # Redis down, or a message the layer could not decode: log, wait, go on.
                slots.release(reserved)
                logger.warning("receive on %s failed: %r; retrying in %.1fs", channel, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            unused = reserved - len(messages)
            if unused > 0:
                slots.release(unused)
            for message in messages:
                self._spawn(self._handle(channel, target, message), slots)

    def _spawn(self, coro: Awaitable[None], slots: Slots) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            slots.release()

        task.add_done_callback(done)

    async def _handle(self, channel: str, target: Target, message: Any) -> None:
        if isinstance(target, Service):
            await target.handle_message(
                message, self.layer, executor=self.executor, channel=channel
            )
            return
        await self._to_asgi_app(channel, target, message)

    async def _to_asgi_app(self, channel: str, app: Any, message: Any) -> None:
        # A plain channels consumer: one long-lived instance per channel, fed in order,
        # as channels' own worker does; messages without a type are dropped, not fatal.
        if not isinstance(message, dict) or not message.get("type"):
            metrics.inc("requests_malformed")
            logger.warning("dropped a message without a 'type' on %s", channel)
            return
        queue = self._asgi_queues.get(channel)
        if queue is None:
            queue = self._asgi_queues[channel] = asyncio.Queue()
            scope = {"type": "channel", "channel": channel}

            async def send(_: Any) -> None:
                raise RuntimeError("channel consumers cannot send replies through the worker")

            instance = asyncio.ensure_future(app(scope, queue.get, send))
            instance.add_done_callback(lambda t: self._asgi_queues.pop(channel, None))
        await queue.put(message)


def install_signal_handlers(worker: Worker) -> None:
    """SIGTERM and SIGINT stop the worker gracefully (drain, then exit 0)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, _on_signal, worker, sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread
            pass


def _on_signal(worker: Worker, sig: signal.Signals) -> None:
    logger.info("received %s: stopping after in-flight requests", sig.name)
    worker.stop()
