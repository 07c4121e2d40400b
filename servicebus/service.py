"""``Service``: named methods a worker serves on the service's request channel."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from servicebus.conf import get_settings, request_channel
from servicebus.context import _current, _handler_loop
from servicebus.envelope import (
    EnvelopeError,
    decode_body,
    encode_body,
    error_reply,
    ok_reply,
    parse_request,
)
from servicebus.errors import BadRequest, MethodNotFound, ServiceBusError
from servicebus.metrics import metrics
from servicebus.request import Request

logger = logging.getLogger("servicebus.service")

Handler = Callable[[Request], Any]
H = TypeVar("H", bound=Handler)


def _close_old_connections() -> None:
    # Sync handlers run in pooled threads; like Django's request cycle, drop connections
    # that are broken or past CONN_MAX_AGE before and after each use.
    from django.conf import settings

    if settings.configured:
        from django.db import close_old_connections

        close_old_connections()


def _run_sync_handler(fn: Handler, request: Request) -> Any:
    _close_old_connections()
    try:
        return fn(request)
    finally:
        _close_old_connections()


class Service:
    """A named service; register handlers with ``@svc.method()``, serve with runworker."""

    def __init__(self, name: str, *, channel: str | None = None) -> None:
        if not name or not isinstance(name, str):
            raise ValueError("a service needs a non-empty str name")
        self.name = name
        self.channel = channel or request_channel(name)
        self._handlers: dict[str, Handler] = {}
        self._async_handlers: set[str] = set()

    def __repr__(self) -> str:
        return f"<Service {self.name!r} on {self.channel!r}: {sorted(self._handlers)}>"

    def method(self, name: str | None = None) -> Callable[[H], H]:
        """Register a sync or async ``handler(request) -> reply body`` under ``name``."""

        def register(fn: H) -> H:
            method_name = name or fn.__name__
            if method_name in self._handlers:
                raise ValueError(f"{self.name}: method {method_name!r} is already registered")
            self._handlers[method_name] = fn
            if inspect.iscoroutinefunction(fn):
                self._async_handlers.add(method_name)
            return fn

        if callable(name):  # used bare, as @svc.method
            fn, name = name, None
            return register(fn)
        return register

    @property
    def methods(self) -> list[str]:
        """Names of the registered methods."""
        return sorted(self._handlers)

    def as_consumer(self, *, concurrency: int | None = None) -> ServiceConsumer:
        """An ASGI application for channels routing (``ChannelNameRouter``)."""
        return ServiceConsumer(self, concurrency=concurrency)

    async def handle_message(
        self,
        message: Any,
        layer: Any,
        *,
        executor: Executor | None = None,
        channel: str | None = None,
    ) -> None:
        """Handle one raw message from the request channel and send the reply; never raises."""
        try:
            envelope = parse_request(message)
        except EnvelopeError as exc:
            metrics.inc("requests_malformed")
            logger.warning(
                "%s: dropped malformed message on %s: %s",
                self.name,
                channel or self.channel,
                exc.reason,
            )
            if exc.reply_to:
                bad = BadRequest(f"malformed request: {exc.reason}")
                await self._send_reply(layer, exc.reply_to, error_reply(exc.id, bad.to_wire()), "-")
            return
        cid = envelope.correlation_id
        if envelope.deadline <= time.time():
            # The caller has given up already: running it would waste work and could
            # act on a request whose caller reported a timeout.
            metrics.inc("requests_expired")
            logger.info(
                "%s.%s expired before a worker took it (caller %s) [%s]",
                self.name,
                envelope.method,
                envelope.caller or "?",
                cid,
                extra={"correlation_id": cid},
            )
            return
        reply: dict[str, Any]
        try:
            handler = self._handlers.get(envelope.method)
            if handler is None:
                raise MethodNotFound(
                    message=f"service {self.name!r} has no method {envelope.method!r}; "
                    f"it has {self.methods}"
                )
            request = Request(
                method=envelope.method,
                body=decode_body(envelope.body),
                correlation_id=cid,
                deadline=envelope.deadline,
                headers=envelope.headers,
                flags=envelope.flags,
                caller=envelope.caller,
                id=envelope.id,
                service=self.name,
                reply_to=envelope.reply_to,
            )
            result = await self._invoke(
                handler, request, executor, envelope.method in self._async_handlers
            )
            try:
                encoded = encode_body(result, get_settings().MAX_BODY_SIZE)
            except BadRequest as exc:
                # The handler's fault, not the caller's: log it here, answer "internal".
                raise RuntimeError(f"reply of {self.name}.{envelope.method}: {exc}") from None
            reply = ok_reply(envelope.id, encoded)
            metrics.inc("requests_handled")
        except ServiceBusError as exc:
            # Expected failures (ServiceError), and bus errors of nested calls, cross
            # the wire as their code; they carry no traceback.
            metrics.inc("requests_failed")
            logger.info(
                "%s.%s failed: %s %s [%s]",
                self.name,
                envelope.method,
                exc.code,
                exc.message,
                cid,
                extra={"correlation_id": cid},
            )
            reply = error_reply(envelope.id, exc.to_wire())
        except Exception:
            metrics.inc("requests_failed")
            logger.exception(
                "%s.%s raised [%s]",
                self.name,
                envelope.method,
                cid,
                extra={"correlation_id": cid},
            )
            reply = error_reply(
                envelope.id,
                {
                    "code": "internal",
                    "message": f"internal error in {self.name}.{envelope.method}; "
                    f"see the service's log for correlation id {cid}",
                    "details": None,
                },
            )
        if envelope.reply_to:
            await self._send_reply(layer, envelope.reply_to, reply, cid)

    async def _invoke(
        self, handler: Handler, request: Request, executor: Executor | None, is_async: bool
    ) -> Any:
        token = _current.set(request)
        try:
            if is_async:
                return await handler(request)
            loop = asyncio.get_running_loop()
            # copy_context() after the set: the thread sees the request, so nested
            # sync call()s inherit correlation ID, headers, flags and deadline.
            loop_token = _handler_loop.set(loop)
            ctx = contextvars.copy_context()
            _handler_loop.reset(loop_token)
            result = await loop.run_in_executor(
                executor, ctx.run, _run_sync_handler, handler, request
            )
            if inspect.isawaitable(result):
                result = await result
            return result
        finally:
            _current.reset(token)

    async def _send_reply(self, layer: Any, reply_to: str, reply: dict[str, Any], cid: str) -> None:
        send_nowait = getattr(layer, "send_nowait", None)
        try:
            if send_nowait is not None:
                # The handler's slot frees without waiting for Redis to confirm; a
                # failure is still counted and logged. layer.close() flushes what is queued.
                send_nowait(reply_to, reply).add_done_callback(
                    functools.partial(self._reply_sent, reply_to, cid)
                )
            else:
                await layer.send(reply_to, reply)
        except Exception as exc:
            self._reply_failed(reply_to, cid, exc)

    def _reply_sent(self, reply_to: str, cid: str, sent: asyncio.Future[None]) -> None:
        if sent.cancelled():
            self._reply_failed(reply_to, cid, asyncio.CancelledError())
        elif (exc := sent.exception()) is not None:
            self._reply_failed(reply_to, cid, exc)

    def _reply_failed(self, reply_to: str, cid: str, exc: BaseException) -> None:
        metrics.inc("replies_undeliverable")
        logger.warning(
            "%s: reply to %s not delivered: %r [%s]",
            self.name,
            reply_to,
            exc,
            cid,
            extra={"correlation_id": cid},
        )


class ServiceConsumer:
    """ASGI app serving a Service on a channel; runs requests concurrently.

    servicebus's runworker recognises it and calls the service directly; under another
    worker (channels' runworker) it still handles up to ``concurrency`` requests at once.
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
        from channels.layers import get_channel_layer

        if scope.get("type") != "channel":
            raise ValueError(f"{self.service.name} consumer serves 'channel' scopes only")
        layer = get_channel_layer(get_settings().CHANNEL_LAYER)
        slots = asyncio.Semaphore(self.concurrency or get_settings().WORKER_CONCURRENCY)
        tasks: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            slots.release()

        try:
            while True:
                await slots.acquire()
                message = await receive()
                task = asyncio.create_task(
                    self.service.handle_message(message, layer, channel=scope.get("channel"))
                )
                tasks.add(task)
                task.add_done_callback(done)
        finally:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
