"""The worker: receives requests, runs them with bounded concurrency, sends the replies.

It takes messages from the transport only for free slots, so a backlog stays in Redis,
where the channel's capacity turns it into Backpressure for callers; with
servicebus's Redis layer k free slots cost one round trip. ``Dispatcher`` (slots, tasks,
replies) is shared by ``Worker`` (``manage.py runworker``) and ``ServiceConsumer``
(a Service under channels' own runworker).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from servicebus import hooks
from servicebus.conf import get_settings
from servicebus.envelope import RequestEnvelope
from servicebus.errors import BusMisconfigured, BusUnavailable, ServiceBusError
from servicebus.metrics import metrics
from servicebus.runner import Runner
from servicebus.service import Outgoing, Service
from servicebus.signing import Signer, current_signer
from servicebus.transport import Transport, get_transport

logger = logging.getLogger("servicebus.worker")

# Tasks that start eagerly (asyncio.Task(eager_start=True)) exist from Python 3.12 on: a
# request whose handler never suspends then costs no task scheduling at all.
EAGER = sys.version_info >= (3, 12)

Target = Service | Callable[..., Awaitable[None]]


def resolve_targets(application: Any, channels: list[str]) -> dict[str, Target]:
    """Find what serves each channel in an ASGI app (ProtocolTypeRouter/ChannelNameRouter)."""
    # Imported here: channels.routing loads Django's URL machinery, which only runworker needs.
    from channels.routing import ChannelNameRouter, ProtocolTypeRouter

    targets: dict[str, Target] = {}
    app = application
    # channels' routers keep their routes in ``application_mapping``.
    if isinstance(app, ProtocolTypeRouter) and "channel" in app.application_mapping:
        app = app.application_mapping["channel"]
    for channel in channels:
        target: Any = (
            app.application_mapping.get(channel) if isinstance(app, ChannelNameRouter) else app
        )
        if target is None:
            raise ValueError(f"no application routes channel {channel!r}; check ASGI_APPLICATION")
        targets[channel] = target.service if isinstance(target, ServiceConsumer) else target
    return targets


class Slots:
    """Counts free handler slots; fetchers reserve slots before they take messages."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self.closed = False
        self._changed = asyncio.Event()

    async def reserve(self, at_most: int) -> int:
        """Wait for a free slot, then reserve up to ``at_most`` of them (0 once closed)."""
        while self.free <= 0 and not self.closed:
            self._changed.clear()
            await self._changed.wait()
        if self.closed:
            return 0
        taken = min(self.free, max(1, at_most))
        self.free -= taken
        return taken

    def release(self, count: int = 1) -> None:
        """Give ``count`` slots back."""
        self.free += count
        self._changed.set()

    def close(self) -> None:
        """Wake every waiter with 0 slots: the worker is stopping."""
        self.closed = True
        self._changed.set()


class Dispatcher:
    """Runs requests as tasks within the slots' budget and sends their replies."""

    def __init__(
        self, transport: Transport, slots: Slots, executor: Executor | None = None
    ) -> None:
        self.transport = transport
        self.slots = slots
        self.executor = executor
        # The task of each request being handled (keyed by its envelope: a task that ends
        # removes itself without asking asyncio which task it is).
        self.running: dict[RequestEnvelope, asyncio.Task[None]] = {}

    async def submit(self, service: Service, channel: str, messages: list[Any]) -> None:
        """Run ``messages`` (one reserved slot each); each slot frees when its request is done.

        With signing keys, only verified requests run, each id at most once until its
        deadline: the batch's ids are claimed in one round trip before any of them runs.
        """
        signer = current_signer()
        accepted: list[RequestEnvelope] = []
        for message in messages:
            outcome = service.accept(message, channel, signer)
            if isinstance(outcome, RequestEnvelope):
                accepted.append(outcome)
                continue
            self.slots.release()
            if outcome is not None:
                self.send_reply(outcome, "-")
        if signer is not None and accepted:
            accepted = await self._claim(channel, accepted)
        if not accepted:
            return
        loop = asyncio.get_running_loop()
        running = self.running
        for envelope in accepted:
            coro = self._run(service, envelope, signer)
            if EAGER:
                # Python 3.12+: the handler runs at once, as the current task; a task that
                # never suspends (an async handler that answers from memory) is done here.
                task = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
                if task.done():
                    continue
            else:
                task = loop.create_task(coro)
            running[envelope] = task

    async def _claim(self, channel: str, batch: list[RequestEnvelope]) -> list[RequestEnvelope]:
        # The key expires with the request's deadline: after it the request is expired anyway.
        keys = [(f"servicebus.seen:{{{channel}}}:{e.id}", e.deadline) for e in batch]
        try:
            fresh = await self.transport.claim(keys)
        except ServiceBusError as exc:
            # Fail closed: a request that cannot be proven new is not run (at-most-once).
            self.slots.release(len(batch))
            hooks.dropped("unclaimed", "requests", len(batch))
            logger.warning("dropped %d signed request(s): replay check failed: %s", len(batch), exc)
            return []
        kept = []
        for envelope, new in zip(batch, fresh, strict=True):
            if new:
                kept.append(envelope)
                continue
            self.slots.release()
            hooks.dropped("replayed", "requests")
            logger.warning(
                "dropped a replayed request %s",
                envelope.id,
                extra={"correlation_id": envelope.correlation_id},
            )
        return kept

    async def _run(
        self, service: Service, envelope: RequestEnvelope, signer: Signer | None
    ) -> None:
        # The slot frees here, not in a done callback: that would cost a loop callback per
        # request. (A task cancelled before its first step only happens in drain().)
        try:
            outgoing = await service.run(envelope, executor=self.executor, signer=signer)
            if outgoing is not None:
                self.send_reply(outgoing, envelope.correlation_id)
        finally:
            self.slots.release()
            self.running.pop(envelope, None)

    def send_reply(self, outgoing: Outgoing, cid: str) -> None:
        """Queue a reply; its slot frees without waiting for Redis (failures are counted)."""
        reply_to, reply = outgoing
        try:
            self.transport.send_nowait(
                reply_to, reply, functools.partial(self._reply_sent, reply_to, cid)
            )
        except ServiceBusError as exc:
            self._reply_sent(reply_to, cid, exc)

    @staticmethod
    def _reply_sent(reply_to: str, cid: str, error: ServiceBusError | None) -> None:
        if error is None:
            return
        hooks.dropped("undeliverable", "replies")
        logger.warning(
            "reply to %s not delivered: %s",
            reply_to,
            error,
            extra={"correlation_id": cid},
        )

    async def drain(self, timeout: float | None) -> None:
        """Wait for running requests (up to ``timeout``), then cancel what is left."""
        if not self.running:
            return
        logger.info("draining %d in-flight request(s)", len(self.running))
        _, pending = await asyncio.wait(set(self.running.values()), timeout=timeout)
        if pending:
            logger.warning(
                "%d request(s) still running after %.1fs; abandoning them",
                len(pending),
                timeout or 0.0,
            )
            for task in pending:
                task.cancel()
            # A task cancelled before its first step never runs its own cleanup.
            await asyncio.wait(pending, timeout=1.0)
            never_ran = [e for e, t in self.running.items() if t in pending and t.done()]
            self.slots.release(len(never_ran))
            for envelope in never_ran:
                del self.running[envelope]


class Worker:
    """Serve ``targets`` (channel -> Service or ASGI app) over ``transport`` until stopped."""

    def __init__(
        self,
        transport: Transport,
        targets: Mapping[str, Target],
        *,
        concurrency: int | None = None,
        drain_timeout: float | None = None,
        max_batch: int | None = None,
    ) -> None:
        settings = get_settings()
        if not targets:
            raise ValueError("a worker needs at least one channel")
        self.transport = transport
        self.targets = dict(targets)
        self.concurrency = concurrency or settings.WORKER_CONCURRENCY
        self.drain_timeout = settings.DRAIN_TIMEOUT if drain_timeout is None else drain_timeout
        self.poll = settings.RECEIVE_POLL
        self.max_batch = max_batch or settings.WORKER_BATCH
        self.executor = ThreadPoolExecutor(
            self.concurrency, thread_name_prefix="servicebus-handler"
        )
        # Receive errors (Redis away) retry with jittered backoff; BusMisconfigured ends it.
        self.runner = Runner("worker", retry_on=(Exception,), max_backoff=2.0)
        self.slots = Slots(self.concurrency)
        self.dispatcher = Dispatcher(transport, self.slots, self.executor)
        self._asgi_queues: dict[str, asyncio.Queue[Any]] = {}
        self._failure: BaseException | None = None
        self.started = asyncio.Event()

    def stop(self) -> None:
        """Stop taking messages; ``run()`` returns once in-flight requests are answered.

        Safe from any thread and from a signal handler.
        """
        self.runner.stop()

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        return len(self.dispatcher.running)

    async def run(self) -> None:
        """Check the bus, serve until ``stop()``, then finish in-flight requests.

        Raises BusMisconfigured (before serving) when retrying cannot help.
        """
        if not await self._wait_for_bus():
            return
        share = max(1, min(self.max_batch, self.concurrency // len(self.targets)))
        fetchers = [
            asyncio.create_task(
                self.runner.arun(functools.partial(self._fetch, channel, target, share)),
                name=f"fetch-{channel}",
            )
            for channel, target in self.targets.items()
        ]
        for task in fetchers:
            task.add_done_callback(self._fetcher_done)
        logger.info(
            "worker serving %s with concurrency %d", ", ".join(self.targets), self.concurrency
        )
        self.started.set()
        try:
            await self.runner.wait_async()
        finally:
            self.stop()
            self.slots.close()  # wakes fetchers waiting for a slot
            if not self.transport.interruptible_receive:
                # Fetchers notice the stop within one receive poll and take nothing more;
                # cancelling a pop Redis may have served could lose what it took.
                await asyncio.wait(fetchers, timeout=self.poll + 5)
            for task in fetchers:
                task.cancel()
            await self.dispatcher.drain(self.drain_timeout)
            self.executor.shutdown(wait=False, cancel_futures=False)
            logger.info("worker stopped; counters %s", metrics.snapshot())
        if self._failure is not None:
            raise self._failure

    async def _wait_for_bus(self) -> bool:
        """Check the transport until it answers (transient errors retry); False if stopped."""
        ready = await self.runner.aretry(self.transport.check, retry_on=(BusUnavailable,))
        return ready is not None

    def _fetcher_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            level = logging.ERROR if isinstance(exc, BusMisconfigured) else logging.CRITICAL
            logger.log(level, "%s stopped: %s; stopping the worker", task.get_name(), exc)
            self._failure = exc
            self.stop()

    async def _fetch(self, channel: str, target: Target, share: int) -> float | None:
        reserved = await self.slots.reserve(share)
        if reserved == 0:
            return None
        if self.runner.stopping:
            self.slots.release(reserved)
            return None
        try:
            messages = await self.transport.receive(channel, reserved, timeout=self.poll)
        except BaseException:
            self.slots.release(reserved)
            raise
        unused = reserved - len(messages)
        if unused > 0:
            self.slots.release(unused)
        if not messages:
            return None
        if isinstance(target, Service):
            await self.dispatcher.submit(target, channel, messages)
        else:
            for message in messages:
                await self._to_asgi_app(channel, target, message)
                self.slots.release()
        return None

    async def _to_asgi_app(self, channel: str, app: Any, message: Any) -> None:
        # A plain channels consumer: one long-lived instance per channel, fed in order,
        # as channels' own worker does; messages without a type are dropped, not fatal.
        if not isinstance(message, dict) or not message.get("type"):
            hooks.dropped("malformed", "requests")
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


class ServiceConsumer:
    """ASGI app serving a Service on a channel, for channels' own runworker.

    servicebus's runworker recognises it and serves the service directly; under another
    worker it still runs up to ``concurrency`` requests at once, with the same Dispatcher.
    """

    def __init__(self, service: Service, *, concurrency: int | None = None) -> None:
        self.service = service
        self.concurrency = concurrency

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """Serve messages from ``receive`` until cancelled."""
        if scope.get("type") != "channel":
            raise ValueError(f"{self.service.name} consumer serves 'channel' scopes only")
        slots = Slots(self.concurrency or get_settings().WORKER_CONCURRENCY)
        dispatcher = Dispatcher(get_transport(), slots)
        channel = str(scope.get("channel") or self.service.channel)
        try:
            while True:
                await slots.reserve(1)
                message = await receive()
                await dispatcher.submit(self.service, channel, [message])
        finally:
            if dispatcher.running:
                await asyncio.gather(*dispatcher.running.values(), return_exceptions=True)
