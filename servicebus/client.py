"""``acall``: send a request, wait for its reply (or a typed error).

Each event loop gets one reply channel and one listener task (``ReplyRouter``) that maps
request ids to waiting futures, as nameko does: a call costs one send and no extra
round trip to wait, and a late reply is counted and dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from servicebus.conf import REPLY_CHANNEL_PREFIX, get_settings
from servicebus.context import current_edge, current_request
from servicebus.envelope import (
    Reply,
    decode_body,
    encode_body,
    parse_reply,
    request_message,
    validate_headers,
)
from servicebus.errors import Backpressure, BusUnavailable, CallTimeout, rebuild_error
from servicebus.metrics import metrics

logger = logging.getLogger("servicebus.client")

try:  # redis is a dependency, but the client also runs on the in-memory layer
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    _UNAVAILABLE: tuple[type[BaseException], ...] = (
        _RedisConnectionError,
        _RedisTimeoutError,
        ConnectionError,
        OSError,
    )
except ImportError:  # pragma: no cover
    _UNAVAILABLE = (ConnectionError, OSError)


def get_layer(alias: str | None = None) -> Any:
    """The channel layer servicebus uses (``SERVICEBUS['CHANNEL_LAYER']``, default 'default')."""
    name = alias or get_settings().CHANNEL_LAYER
    layer = get_channel_layer(name)
    if layer is None:
        raise BusUnavailable(f"no channel layer {name!r} in CHANNEL_LAYERS")
    return layer


class ReplyRouter:
    """One reply channel per (event loop, layer); routes replies to waiting calls by id."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self._waiters: dict[str, asyncio.Future[Reply]] = {}
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None

    @property
    def alive(self) -> bool:
        """False once the listener stopped (its loop closed or it was cancelled)."""
        return self._task is None or not self._task.done()

    async def ensure_started(self) -> str:
        """Create the reply channel and listener on first use; return the channel name."""
        if self.channel is not None:
            return self.channel
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self.channel is None:
                channel = await self.layer.new_channel(REPLY_CHANNEL_PREFIX)
                self._task = asyncio.get_running_loop().create_task(
                    self._listen(channel), name=f"servicebus-replies-{channel}"
                )
                self.channel = channel
        return self.channel

    def expect(self, request_id: str) -> asyncio.Future[Reply]:
        """A future resolved when the reply to ``request_id`` arrives."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = future
        return future

    def forget(self, request_id: str) -> None:
        """Stop waiting for ``request_id``; a reply arriving later is counted as late."""
        self._waiters.pop(request_id, None)

    async def _listen(self, channel: str) -> None:
        backoff = 0.05
        listen_local = getattr(self.layer, "listen_local", None)
        receive_many = getattr(self.layer, "receive_many", None)
        deliver_many = functools.partial(self._deliver_many, channel)
        while True:
            try:
                if listen_local is not None:
                    # The layer's drainer calls us with each batch: no wake-up of this task.
                    await listen_local(channel, deliver_many)
                    continue
                if receive_many is not None:
                    # Every reply already in the process in one wake-up, not one each.
                    messages = await receive_many(channel, 256)
                else:
                    messages = [await self.layer.receive(channel)]
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis went away: keep listening; callers time out meanwhile.
                logger.warning("reply listener on %s: %r; retrying", channel, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            for message in messages:
                self._deliver(channel, message)

    def _deliver_many(self, channel: str, messages: list[Any]) -> None:
        for message in messages:
            self._deliver(channel, message)

    def _deliver(self, channel: str, message: Any) -> None:
        reply = parse_reply(message)
        if reply is None:
            metrics.inc("replies_malformed")
            logger.warning("dropped a message on %s that is not a reply", channel)
            return
        future = self._waiters.pop(reply.id, None)
        if future is None or future.done():
            metrics.inc("replies_late")
            return
        future.set_result(reply)


_routers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, ReplyRouter]] = (
    weakref.WeakKeyDictionary()
)
# The router of the last (loop, layer) pair used: nearly every call hits it, and it spares
# a weak-dictionary lookup per call. Only ever touched from a running loop's thread, and
# checked against both loop and layer, so a stale entry is never used.
_last: tuple[asyncio.AbstractEventLoop | None, Any, ReplyRouter | None] = (None, None, None)


def _router_for(layer: Any) -> ReplyRouter:
    global _last
    loop = asyncio.get_running_loop()
    last_loop, last_layer, router = _last
    if loop is last_loop and layer is last_layer and router is not None and router.alive:
        return router
    per_loop = _routers.setdefault(loop, {})
    router = per_loop.get(id(layer))
    if router is None or router.layer is not layer or not router.alive:
        router = per_loop[id(layer)] = ReplyRouter(layer)
    _last = (loop, layer, router)
    return router


def _send_error(exc: BaseException, channel: str) -> BaseException:
    if isinstance(exc, ChannelFull):
        metrics.inc("calls_backpressure")
        return Backpressure(f"{channel} is at capacity; nothing was sent")
    if isinstance(exc, _UNAVAILABLE):
        return BusUnavailable(f"cannot reach the channel layer: {exc}")
    return exc


def _send_failed(reply: asyncio.Future[Reply], channel: str, sent: asyncio.Future[None]) -> None:
    if sent.cancelled():
        error: BaseException | None = BusUnavailable("the send was cancelled (layer closing)")
    else:
        error = sent.exception()
    if error is not None and not reply.done():
        reply.set_exception(_send_error(error, channel))


def _expire(future: asyncio.Future[Reply]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


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
    parent = current_request()
    edge = current_edge() if parent is None else None
    now = time.time()
    wait = settings.DEFAULT_TIMEOUT if timeout is None else float(timeout)
    merged_headers: dict[str, str] = {}
    merged_flags: set[str] = set()
    correlation_id: str | None = None
    caller = settings.SERVICE_NAME
    if parent is not None:
        # Nested call: inherit the chain's identity and never outlive the parent.
        correlation_id = parent.correlation_id
        merged_headers.update(parent.headers)
        merged_flags.update(parent.flags)
        wait = min(wait, parent.deadline - now)
        caller = parent.service or caller
    elif edge is not None:
        correlation_id = edge.correlation_id
        merged_headers.update(edge.headers)
        merged_flags.update(edge.flags)
    merged_headers.update(validate_headers(headers))
    if flags is not None:
        if isinstance(flags, str):
            flags = [flags]
        merged_flags.update(str(f) for f in flags)
    if wait <= 0:
        metrics.inc("calls_timeout")
        raise CallTimeout(
            f"no time left to call {channel} {method}: the parent request's deadline passed"
        )
    encoded = encode_body(body, settings.MAX_BODY_SIZE)
    layer = get_layer()
    router = _router_for(layer)
    request_id = uuid.uuid4().hex
    try:
        reply_to = await router.ensure_started()
    except _UNAVAILABLE as exc:
        raise BusUnavailable(f"cannot reach the channel layer: {exc}") from exc
    message = request_message(
        id=request_id,
        correlation_id=correlation_id or request_id,
        method=method,
        body=encoded,
        reply_to=reply_to,
        deadline=now + wait,
        headers=merged_headers,
        flags=merged_flags,
        caller=caller,
    )
    future = router.expect(request_id)
    try:
        send_nowait = getattr(layer, "send_nowait", None)
        if send_nowait is not None:
            # Wait for the send's outcome and the reply together: a refused send fails
            # the call at once, an accepted one costs no extra task switch.
            send_nowait(channel, message).add_done_callback(
                functools.partial(_send_failed, future, channel)
            )
        else:
            try:
                await layer.send(channel, message)
            except (ChannelFull, *_UNAVAILABLE) as exc:
                raise _send_error(exc, channel) from exc
        handle = asyncio.get_running_loop().call_later(wait, _expire, future)
        try:
            reply = await future
        except TimeoutError:
            metrics.inc("calls_timeout")
            raise CallTimeout(f"no reply from {channel} {method} within {wait:.3g}s") from None
        finally:
            handle.cancel()
    finally:
        router.forget(request_id)
    if reply.ok:
        return decode_body(reply.body)
    raise rebuild_error(reply.error)
