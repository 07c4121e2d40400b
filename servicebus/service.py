"""``Service``: named methods, and dispatch — one message in, one reply out (never sends).

Receiving, bounded concurrency and sending replies belong to the worker
(``servicebus.worker``); ``Service.dispatch`` is what it calls for each message.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from servicebus import hooks, typed
from servicebus.conf import get_settings, request_channel
from servicebus.context import enter_request, leave_request, sync_handler_context
from servicebus.envelope import (
    EnvelopeError,
    RequestEnvelope,
    decode_body,
    encode_body,
    error_reply,
    ok_reply,
    parse_request,
)
from servicebus.errors import (
    BadRequest,
    MethodNotFound,
    PayloadTooLarge,
    ServiceBusError,
)
from servicebus.metrics import metrics
from servicebus.request import Request
from servicebus.signing import Signer, current_signer

if TYPE_CHECKING:
    from servicebus.worker import ServiceConsumer

logger = logging.getLogger("servicebus.service")

Handler = Callable[[Request], Any]
H = TypeVar("H", bound=Handler)
#: A reply to send: (reply channel, reply message).
Outgoing = tuple[str, dict[str, Any]]


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
        # Declared types by method (servicebus.typed): bodies are checked before the handler.
        self.body_types: dict[str, Any] = {}
        self.return_types: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<Service {self.name!r} on {self.channel!r}: {sorted(self._handlers)}>"

    def method(
        self, name: str | None = None, *, body: Any = None, returns: Any = None, **options: Any
    ) -> Callable[[H], H]:
        """Register a sync or async ``handler(request) -> reply body`` under ``name``.

        ``body=SomeType`` (servicebus.typed): the body is checked and converted first.
        """
        if options:
            raise TypeError(f"unknown method option(s): {sorted(options)}")

        def register(fn: H) -> H:
            method_name = name or fn.__name__
            if hooks.is_reserved(method_name):
                raise ValueError(f"{self.name}: method names starting with '_' are reserved")
            if method_name in self._handlers:
                raise ValueError(f"{self.name}: method {method_name!r} is already registered")
            self._handlers[method_name] = fn
            if inspect.iscoroutinefunction(fn):
                self._async_handlers.add(method_name)
            if body is not None:
                self.body_types[method_name] = typed.check_type(body)
            declared = typed.check_type(returns) if returns is not None else typed.return_type(fn)
            if declared is not None:
                self.return_types[method_name] = declared
            return fn

        if callable(name):  # used bare, as @svc.method
            fn, name = name, None
            return register(fn)
        return register

    @property
    def handlers(self) -> Mapping[str, Handler]:
        """The registered handlers by method name (read-only; ``_info`` describes them)."""
        return MappingProxyType(self._handlers)

    @property
    def methods(self) -> list[str]:
        """Names of the registered methods."""
        return sorted(self._handlers)

    def as_consumer(self, *, concurrency: int | None = None) -> ServiceConsumer:
        """An ASGI application for channels routing (``ChannelNameRouter``)."""
        from servicebus.worker import ServiceConsumer  # the worker module imports this one

        return ServiceConsumer(self, concurrency=concurrency)

    # ---- dispatch ------------------------------------------------------------------

    def accept(
        self, message: Any, channel: str | None = None, signer: Signer | None = None
    ) -> RequestEnvelope | Outgoing | None:
        """Check a message received on ``channel``: the envelope to run, an error reply, or
        None (dropped and counted). With a ``signer``, only requests signed for ``channel``
        with one of its keys are accepted, and nothing unauthenticated is answered.
        """
        try:
            envelope = parse_request(message)
        except EnvelopeError as exc:
            hooks.dropped("malformed", "requests")
            logger.warning("%s: dropped a malformed message: %s", self.name, exc.reason)
            if exc.reply_to and signer is None:
                bad = BadRequest(f"malformed request: {exc.reason}")
                return exc.reply_to, error_reply(exc.id, bad.to_wire())
            return None
        if signer is not None:
            problem = signer.check_request(channel or self.channel, message)
            if problem is not None:
                # Not run and not answered: whoever wrote it has no key.
                hooks.dropped(problem, "requests")
                logger.warning(
                    "%s: dropped a request (%s) claiming to come from %s",
                    self.name,
                    problem,
                    envelope.caller or "?",
                )
                return None
        if envelope.deadline <= time.time():
            # The caller has given up already: running it would waste work and could
            # act on a request whose caller reported a timeout.
            hooks.dropped("expired", "requests")
            logger.info(
                "%s.%s expired before a worker took it (caller %s)",
                self.name,
                envelope.method,
                envelope.caller or "?",
                extra={"correlation_id": envelope.correlation_id},
            )
            return None
        return envelope

    async def dispatch(
        self, message: Any, *, channel: str | None = None, executor: Executor | None = None
    ) -> Outgoing | None:
        """Handle one raw message: the reply to send (channel, message), or None. Never raises.

        (Replay protection of signed requests is the worker's: it claims ids per batch.)
        """
        signer = current_signer()
        accepted = self.accept(message, channel, signer)
        if not isinstance(accepted, RequestEnvelope):
            return accepted
        return await self.run(accepted, executor=executor, signer=signer)

    async def run(
        self,
        envelope: RequestEnvelope,
        *,
        executor: Executor | None = None,
        signer: Signer | None = None,
    ) -> Outgoing | None:
        """Run the handler of an accepted request and build its (signed) reply. Never raises."""
        cid = envelope.correlation_id
        body: Any = None
        refused: ServiceBusError | None = None
        try:
            body = self._decode(envelope)
            declared = self.body_types.get(envelope.method)
            if declared is not None:
                body = typed.validate(declared, body)
        except ServiceBusError as exc:
            refused = exc
        # Positional (the dataclass's field order): a keyword call costs a third more here.
        request = Request(
            envelope.method,
            body,
            cid,
            envelope.deadline,
            envelope.headers,
            envelope.flags,
            envelope.caller,
            envelope.id,
            self.name,
            envelope.reply_to,
            envelope.parent,
        )
        info: hooks.CallInfo | None = None
        token = enter_request(request)
        try:
            if hooks.enabled:
                info = hooks.CallInfo(
                    "server",
                    service=self.name,
                    method=envelope.method,
                    channel=self.channel,
                    caller=envelope.caller,
                    correlation_id=cid,
                    request_id=envelope.id,
                    parent_id=envelope.parent,
                    headers=envelope.headers,
                )
                # In the request's context, before the handler: a span made current here
                # is the parent of the handler's nested calls.
                hooks.run(hooks.server_start, info)
            reply = await self._reply_for(envelope, request, executor, refused)
        finally:
            leave_request(token)
        if info is not None:
            info.duration = time.time() - info.started
            info.code = "ok" if reply["ok"] else reply["error"]["code"]
            hooks.run(hooks.server_end, info)
        if not envelope.reply_to:
            return None
        if signer is not None:
            signer.sign_reply(reply, envelope.kid)
        return envelope.reply_to, reply

    @staticmethod
    def _decode(envelope: RequestEnvelope) -> Any:
        max_size = get_settings().MAX_BODY_SIZE
        if len(envelope.body) > max_size:
            # Checked before decoding: a huge body costs no msgpack work here.
            hooks.dropped("too_large", "requests")
            raise PayloadTooLarge(
                f"request body is {len(envelope.body)} bytes, over the {max_size} limit"
            )
        return decode_body(envelope.body)

    async def _reply_for(
        self,
        envelope: RequestEnvelope,
        request: Request,
        executor: Executor | None,
        refused: ServiceBusError | None,
    ) -> dict[str, Any]:
        method, cid = envelope.method, envelope.correlation_id
        try:
            if refused is not None:
                raise refused
            handler = self._handlers.get(method)
            is_async: bool | None = method in self._async_handlers
            if handler is None and hooks.is_reserved(method):
                handler, is_async = hooks.builtin_methods.get(method), None
            if handler is None:
                raise MethodNotFound(
                    message=f"service {self.name!r} has no method {method!r}; it has {self.methods}"
                )
            if is_async:
                result = await handler(request)  # inline: one coroutine less per request
            else:
                result = await self._invoke(handler, request, executor, is_async)
            try:
                encoded = encode_body(result, get_settings().MAX_BODY_SIZE)
            except BadRequest as exc:
                # The handler's fault, not the caller's: log it here, answer "internal".
                raise RuntimeError(f"reply of {self.name}.{method}: {exc}") from None
            metrics.inc("requests_handled")
            return ok_reply(envelope.id, encoded)
        except ServiceBusError as exc:
            # Expected failures (ServiceError), and bus errors of nested calls, cross
            # the wire as their code; they carry no traceback.
            metrics.inc("requests_failed")
            logger.info(
                "%s.%s failed: %s %s",
                self.name,
                method,
                exc.code,
                exc.message,
                extra={"correlation_id": cid},
            )
            return error_reply(envelope.id, exc.to_wire())
        except Exception:
            metrics.inc("requests_failed")
            logger.exception("%s.%s raised", self.name, method, extra={"correlation_id": cid})
            return error_reply(
                envelope.id,
                {
                    "code": "internal",
                    "message": f"internal error in {self.name}.{method}; "
                    f"see the service's log for correlation id {cid}",
                    "details": None,
                },
            )

    @staticmethod
    async def _invoke(
        handler: Handler, request: Request, executor: Executor | None, is_async: bool | None
    ) -> Any:
        if is_async is None:
            # A built-in method: quick, answered on the worker's loop.
            return handler(request)
        if is_async:
            return await handler(request)
        loop = asyncio.get_running_loop()
        # The thread sees the request (copied context), so nested sync call()s inherit
        # correlation ID, headers, flags and deadline, and run on this worker loop.
        ctx = sync_handler_context(loop)
        result = await loop.run_in_executor(executor, ctx.run, _run_sync_handler, handler, request)
        if inspect.isawaitable(result):
            result = await result
        return result
