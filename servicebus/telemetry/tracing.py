"""OpenTelemetry tracing (extra ``servicebus[otel]``, on opentelemetry-api only).

Each call is a CLIENT span and each handled request a SERVER span, named
``service/method``, with the RPC semantic-convention attributes. ``client_start`` injects
W3C ``traceparent``/``tracestate`` into the request headers; ``server_start`` extracts them
and makes the SERVER span current in the request's context, so nested calls are its
children (the core never copies an inherited ``traceparent``). An error code sets the
span status to ERROR. ``SERVICEBUS["TRACING"] = False`` switches it off. Without an SDK
(no tracer provider configured) the API's no-op spans still pass the context along.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from servicebus.telemetry.identity import VERSION
from servicebus.telemetry.types import CallInfo

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the extra is not installed: hook() is None
    trace = None  # type: ignore[assignment]

SPAN = "otel.span"
TOKEN = "otel.token"


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class TracingHook:
    """Hook: CLIENT and SERVER spans with W3C trace context in the request headers."""

    def __init__(self, tracer_provider: Any = None) -> None:
        assert trace is not None
        self.tracer = trace.get_tracer("servicebus", VERSION, tracer_provider=tracer_provider)

    def _attributes(self, info: CallInfo) -> dict[str, Any]:
        return {
            "rpc.system": "servicebus",
            "rpc.service": info.service,
            "rpc.method": info.method,
            "messaging.destination.name": info.channel,
            "servicebus.correlation_id": info.correlation_id,
            "servicebus.request_id": info.request_id,
        }

    def client_start(self, info: CallInfo) -> None:
        """Start a CLIENT span (child of the current one) and put its context in the headers."""
        span = self.tracer.start_span(
            f"{info.service}/{info.method}", kind=SpanKind.CLIENT, start_time=_ns(info.started)
        )
        if span.is_recording():  # a sampled-out span costs no attribute work
            span.set_attributes(self._attributes(info))
        info.state[SPAN] = span
        # Replaces whatever traceparent the caller set: the parent is this span.
        info.headers.pop("traceparent", None)
        info.headers.pop("tracestate", None)
        propagate.inject(info.headers, context=trace.set_span_in_context(span))

    def client_end(self, info: CallInfo) -> None:
        """End the CLIENT span with the call's outcome."""
        span = info.state.pop(SPAN, None)
        if span is not None:
            self._end(span, info)

    def server_start(self, info: CallInfo) -> None:
        """Start a SERVER span from the incoming trace context and make it current."""
        parent = propagate.extract(info.headers)
        span = self.tracer.start_span(
            f"{info.service}/{info.method}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=_ns(info.started),
        )
        if span.is_recording():
            attributes = self._attributes(info)
            attributes["servicebus.caller"] = info.caller
            span.set_attributes(attributes)
        info.state[SPAN] = span
        info.state[TOKEN] = otel_context.attach(trace.set_span_in_context(span, parent))

    def server_end(self, info: CallInfo) -> None:
        """End the SERVER span with the request's outcome."""
        token = info.state.pop(TOKEN, None)
        if token is not None:
            try:
                otel_context.detach(token)
            except Exception:  # pragma: no cover - server_end ran in another context
                pass
        span = info.state.pop(SPAN, None)
        if span is not None:
            self._end(span, info)

    def _end(self, span: Any, info: CallInfo) -> None:
        if span.is_recording():
            span.set_attribute("servicebus.code", info.code)
            if info.code != "ok":
                span.set_status(Status(StatusCode.ERROR, info.code))
        span.end(end_time=_ns(info.started + info.duration))


def hook() -> TracingHook | None:
    """A tracing hook, or None when opentelemetry-api is missing or TRACING is off."""
    from servicebus.conf import get_settings

    if trace is None or not get_settings().TRACING:
        return None
    return TracingHook()


def inject(carrier: dict[str, str]) -> dict[str, str]:
    """Add the current trace context to ``carrier`` (outbox event headers); returns it."""
    if trace is not None and get_tracing_enabled():
        propagate.inject(carrier)
    return carrier


def get_tracing_enabled() -> bool:
    """Whether TRACING is on (and opentelemetry-api installed)."""
    from servicebus.conf import get_settings

    return trace is not None and get_settings().TRACING


@contextlib.contextmanager
def consuming(topic: str, events: Sequence[Any], tracer_provider: Any = None) -> Iterator[None]:
    """A CONSUMER span around handling outbox ``events``, child of the publisher's context.

    One event: its span's parent is the publishing span (from the event headers); a batch:
    the span links to every event's context. Nothing happens with TRACING off.
    """
    if not get_tracing_enabled() or not events:
        yield
        return
    contexts = [propagate.extract(dict(e.headers or {})) for e in events]
    tracer = trace.get_tracer("servicebus", VERSION, tracer_provider=tracer_provider)
    attributes: dict[str, Any] = {
        "messaging.system": "servicebus",
        "messaging.destination.name": topic,
        "messaging.batch.message_count": len(events),
    }
    if len(events) == 1:
        span = tracer.start_span(
            f"{topic} process", context=contexts[0], kind=SpanKind.CONSUMER, attributes=attributes
        )
    else:
        links = [trace.Link(trace.get_current_span(c).get_span_context()) for c in contexts]
        span = tracer.start_span(
            f"{topic} process", kind=SpanKind.CONSUMER, attributes=attributes, links=links
        )
    with trace.use_span(span, end_on_exit=True):
        yield
