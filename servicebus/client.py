"""``acall``: send a request, wait for its reply (or a typed error).

Each (event loop, transport) gets one reply channel and one supervised listener
(``ReplyRouter``) that maps request ids to waiting futures, as nameko does: a call costs
one send and no extra round trip to wait, and a late reply is counted and dropped.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import math
import os
import secrets
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from servicebus import hooks
from servicebus.backoff import Backoff
from servicebus.conf import MAX_TIMEOUT, get_settings, service_of
from servicebus.context import current_edge, current_request
from servicebus.envelope import (
    Reply,
    decode_body,
    encode_body,
    parse_reply,
    request_message,
    validate_headers,
)
from servicebus.errors import (
    Backpressure,
    BadRequest,
    BusUnavailable,
    CallTimeout,
    ServiceBusError,
    rebuild_error,
)
from servicebus.metrics import metrics
from servicebus.signing import Signer, current_signer, signer_for
from servicebus.transport import Transport, check_channel_name, get_transport

logger = logging.getLogger("servicebus.client")


def check_timeout(timeout: Any) -> float:
    """``timeout`` as seconds if it is a finite number in (0, MAX_TIMEOUT]; else BadRequest."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise BadRequest(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    seconds = float(timeout)
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT):
        raise BadRequest(
            f"timeout must be finite, above 0 and at most {MAX_TIMEOUT:g} s, got {timeout!r}"
        )
    return seconds


def _new_id_source() -> tuple[str, Iterator[int]]:
    return secrets.token_hex(8), itertools.count(1)


# Request ids: a random 64-bit prefix per process and a counter, ten times cheaper than
# uuid4 and as unique across processes (a forked child draws a new prefix).
_id_prefix, _id_counter = _new_id_source()


def _reset_ids() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = _new_id_source()


os.register_at_fork(after_in_child=_reset_ids)


def new_request_id() -> str:
    """A request id unique across processes: random per-process prefix + counter (hex)."""
    return f"{_id_prefix}{next(_id_counter):x}"


class Deadlines:
    """The call deadlines of one event loop, in buckets of RESOLUTION s, one timer in all.

    A timer per call (``call_later`` + ``cancel``) cost more than the rest of the wait;
    here a call costs a set insertion and removal. The timer is armed for the earliest
    bucket and, when it fires, expires the due buckets' calls (never early, at most
    RESOLUTION late) and re-arms for the next bucket still holding a call.
    """

    RESOLUTION = 0.002

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._buckets: dict[int, set[asyncio.Future[Any]]] = {}
        self._keys: list[int] = []  # heap of bucket keys (some may be emptied since)
        self._timer: asyncio.TimerHandle | None = None
        self._armed: float = math.inf

    def add(self, future: asyncio.Future[Any], delay: float) -> int:
        """Fail ``future`` with TimeoutError in ``delay`` s unless done; the bucket's key."""
        key = math.ceil((self.loop.time() + delay) / self.RESOLUTION)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = set()
            heapq.heappush(self._keys, key)
            if key < self._armed:
                self._arm(key)
        bucket.add(future)
        return key

    def discard(self, future: asyncio.Future[Any], key: int) -> None:
        """Forget ``future``'s deadline (it got its reply or its caller gave up)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.discard(future)
            if not bucket:
                del self._buckets[key]

    def _arm(self, key: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = key
        self._timer = self.loop.call_at(key * self.RESOLUTION, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._armed = math.inf
        now = self.loop.time()
        keys = self._keys
        while keys:
            key = keys[0]
            bucket = self._buckets.get(key)
            if bucket is None:
                heapq.heappop(keys)  # emptied meanwhile
                continue
            if key * self.RESOLUTION > now:
                self._arm(key)  # a timer may fire a little early (uvloop: ms ticks)
                return
            heapq.heappop(keys)
            del self._buckets[key]
            for future in bucket:
                if not future.done():
                    future.set_exception(TimeoutError())


class ReplyRouter:
    """One reply channel per (event loop, transport); routes replies to waiting calls by id.

    The listener is supervised: when listening fails it is logged and started again with
    backoff; a reply that cannot be delivered is counted and dropped, never fatal.
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.channel: str | None = None
        # request id -> (future of its reply, its deadline's bucket)
        self._waiters: dict[str, tuple[asyncio.Future[Reply], int]] = {}
        self._deadlines: Deadlines | None = None
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None
        self._backoff = Backoff(0.05, 1.0)

    @property
    def alive(self) -> bool:
        """False once the listener task ended (crashed, cancelled, or its loop closed)."""
        return self._task is None or not self._task.done()

    async def ensure_started(self) -> str:
        """Create the reply channel and listener on first use; return the channel name."""
        if self.channel is not None:
            return self.channel
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self.channel is None:
                channel = await self.transport.reply_channel()
                self._start(channel)
                self.channel = channel
        return self.channel

    def _start(self, channel: str) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(channel), name=f"servicebus-replies-{channel}"
        )

    def revive(self) -> None:
        """Start the listener again after its task ended (counted, logged)."""
        task, channel = self._task, self.channel
        if task is None or not task.done() or channel is None:
            return
        reason = "cancelled" if task.cancelled() else repr(task.exception())
        metrics.inc("reply_listener_restarts")
        logger.error("reply listener on %s ended (%s); restarting it", channel, reason)
        self._start(channel)

    def expect(self, request_id: str, wait: float) -> asyncio.Future[Reply]:
        """A future resolved when the reply to ``request_id`` arrives (TimeoutError after
        ``wait`` seconds)."""
        deadlines = self._deadlines
        if deadlines is None:
            deadlines = self._deadlines = Deadlines(asyncio.get_running_loop())
        future: asyncio.Future[Reply] = deadlines.loop.create_future()
        self._waiters[request_id] = (future, deadlines.add(future, wait))
        return future

    def forget(self, request_id: str) -> None:
        """Stop waiting for ``request_id``; a reply arriving later is counted as late."""
        entry = self._waiters.pop(request_id, None)
        if entry is not None and self._deadlines is not None:
            self._deadlines.discard(*entry)

    async def _supervise(self, channel: str) -> None:
        while True:
            try:
                await self.transport.listen(channel, self.deliver)
                logger.error("reply listener on %s returned; restarting it", channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # A layer turned our cancellation into another error (stock
                    # channels_redis can, mid-read): we are being stopped, not failing.
                    raise asyncio.CancelledError() from exc
                if isinstance(exc, BusUnavailable):
                    # Redis went away: keep listening; callers time out meanwhile.
                    logger.warning("reply listener on %s: %s; retrying", channel, exc)
                else:
                    logger.exception("reply listener on %s crashed; restarting it", channel)
            metrics.inc("reply_listener_restarts")
            await asyncio.sleep(self._backoff.next())

    def deliver(self, messages: list[Any]) -> None:
        """Resolve the calls waiting for ``messages``; each one on its own."""
        signer = current_signer()
        for message in messages:
            try:
                self._deliver(message, signer)
            except Exception:
                logger.exception("delivering a reply failed; dropped it")
                hooks.dropped("error", "replies")
        self._backoff.reset()

    def _deliver(self, message: Any, signer: Signer | None) -> None:
        reply = parse_reply(message)
        if reply is None:
            hooks.dropped("malformed", "replies")
            return
        if signer is not None and (problem := signer.check_reply(message)) is not None:
            # Forged or unsigned: not believed, and the call keeps waiting for the real one.
            hooks.dropped(problem, "replies")
            logger.warning("dropped a reply to %s: %s", reply.id, problem)
            return
        entry = self._waiters.pop(reply.id, None)
        if entry is None or entry[0].done():
            hooks.dropped("late", "replies")
            return
        future, key = entry
        if self._deadlines is not None:
            self._deadlines.discard(future, key)
        future.set_result(reply)


_routers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, ReplyRouter]] = (
    weakref.WeakKeyDictionary()
)
# The router of the last (loop, transport) pair used: nearly every call hits it, and it
# spares a weak-dictionary lookup per call. Only ever touched from a running loop's thread,
# and checked against both loop and transport, so a stale entry is never used.
_last: tuple[asyncio.AbstractEventLoop | None, Any, ReplyRouter | None] = (None, None, None)


def router_for(transport: Transport) -> ReplyRouter:
    """The reply router of the running loop for ``transport`` (made on first use)."""
    global _last
    loop = asyncio.get_running_loop()
    last_loop, last_transport, router = _last
    if loop is last_loop and transport is last_transport and router is not None:
        if not router.alive:
            router.revive()
        return router
    per_loop = _routers.setdefault(loop, {})
    router = per_loop.get(id(transport))
    if router is None or router.transport is not transport:
        router = per_loop[id(transport)] = ReplyRouter(transport)
    elif not router.alive:
        router.revive()
    _last = (loop, transport, router)
    return router


def _send_failed(future: asyncio.Future[Reply], error: ServiceBusError | None) -> None:
    if error is None or future.done():
        return
    if isinstance(error, Backpressure):
        metrics.inc("calls_backpressure")
    future.set_exception(error)


async def acall(
    channel: str,
    method: str,
    body: Any = None,
    *,
    timeout: float | None = None,
    headers: Mapping[str, str] | None = None,
    flags: Iterable[str] | None = None,
) -> Any:
    """Call ``method`` on the service listening on ``channel``; return its reply body.

    Raises a ServiceBusError: CallTimeout, Backpressure, BusUnavailable, BadRequest or
    RemoteError (with the handler's code).
    """
    settings = get_settings()
    wait = settings.DEFAULT_TIMEOUT if timeout is None else check_timeout(timeout)
    check_channel_name(channel)
    if not isinstance(method, str) or not method:
        raise BadRequest(f"method must be a non-empty str, got {method!r}")
    parent = current_request()
    edge = current_edge() if parent is None else None
    now = time.time()
    deadline = now + wait
    merged_headers: dict[str, str] = {}
    merged_flags: set[str] = set()
    correlation_id: str | None = None
    caller = settings.SERVICE_NAME
    parent_id: str | None = None
    if parent is not None:
        # Nested call: inherit the chain's identity and never outlive the parent.
        correlation_id = parent.correlation_id
        parent_id = parent.id or None
        if parent.headers:
            merged_headers.update(hooks.headers_to_inherit(parent.headers))
        merged_flags.update(parent.flags)
        deadline = min(deadline, parent.deadline)
        caller = parent.service or caller
    elif edge is not None:
        correlation_id = edge.correlation_id
        merged_headers.update(edge.headers)
        merged_flags.update(edge.flags)
    if headers:
        merged_headers.update(validate_headers(headers))
    if flags is not None:
        if isinstance(flags, str):
            flags = [flags]
        merged_flags.update(str(f) for f in flags)
    wait = deadline - now
    if wait <= 0:
        metrics.inc("calls_timeout")
        raise CallTimeout(
            f"no time left to call {channel} {method}: the parent request's deadline passed"
        )
    encoded = encode_body(body, settings.MAX_BODY_SIZE)
    transport = get_transport()
    router = router_for(transport)
    request_id = new_request_id()
    reply_to = router.channel or await router.ensure_started()
    info: hooks.CallInfo | None = None
    if hooks.enabled:
        info = hooks.CallInfo(
            "client",
            service=service_of(channel),
            method=method,
            channel=channel,
            caller=caller,
            correlation_id=correlation_id or request_id,
            request_id=request_id,
            parent_id=parent_id,
            headers=merged_headers,
        )
        hooks.run(hooks.client_start, info)
    try:
        message = request_message(
            id=request_id,
            correlation_id=correlation_id or request_id,
            method=method,
            body=encoded,
            reply_to=reply_to,
            deadline=deadline,
            headers=merged_headers,
            flags=merged_flags,
            caller=caller,
            parent=parent_id,
        )
        if settings.SIGNING_KEYS:
            signer_for(settings.SIGNING_KEYS).sign_request(channel, message)
        future = router.expect(request_id, wait)
        try:
            # Wait for the send's outcome and the reply together: a refused send fails
            # the call at once, an accepted one costs no extra task switch.
            transport.send_nowait(channel, message, functools.partial(_send_failed, future))
            try:
                reply = await future
            except TimeoutError:
                metrics.inc("calls_timeout")
                raise CallTimeout(f"no reply from {channel} {method} within {wait:.3g}s") from None
        finally:
            router.forget(request_id)
        if reply.ok:
            return decode_body(reply.body)
        raise rebuild_error(reply.error)
    except ServiceBusError as exc:
        if info is not None:
            info.code = exc.code
        raise
    except asyncio.CancelledError:
        if info is not None:
            info.code = "cancelled"
        raise
    except Exception:
        if info is not None:
            info.code = "error"
        raise
    finally:
        if info is not None:
            info.duration = time.time() - info.started
            hooks.run(hooks.client_end, info)
