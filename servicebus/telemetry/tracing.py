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
import contextvars
import random
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from servicebus.telemetry.identity import VERSION
from servicebus.telemetry.types import CallInfo

try:
    from opentelemetry import baggage, propagate, trace
    from opentelemetry import context as otel_context
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace import (
        NonRecordingSpan,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
        TraceState,
    )
except ImportError:  # the extra is not installed: hook() is None
    trace = None  # type: ignore[assignment]

# TraceFlags by value, made once: the worker reads one per traced request.
_FLAGS = [TraceFlags(i) for i in range(256)] if trace is not None else []
# The key the API files the current span under, found through the API itself.
_SPAN_KEY = (
    next(iter(trace.set_span_in_context(trace.INVALID_SPAN, otel_context.Context())))
    if trace is not None
    else ""
)


def _runtime_var() -> contextvars.ContextVar[Any] | None:
    """The ContextVar behind OTel's default (contextvars) runtime context, else None.

    Reading and setting it directly skips two Python frames per use (get_current, attach,
    detach); any other runtime context goes through the API.
    """
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    return var if isinstance(var, contextvars.ContextVar) else None


_CURRENT = _runtime_var() if trace is not None else None
_get_current: Any = _CURRENT.get if _CURRENT is not None else None


def _attach(context: Any) -> Any:
    return _CURRENT.set(context) if _CURRENT is not None else otel_context.attach(context)


# traceparent endings: any flags (no SDK: the context passes on either way).
_ANY_FLAGS = tuple(f"-{i:02x}" for i in range(256))
# traceparent endings of an unsampled trace (the sampled bit, 0x01, unset; 0x02: random id).
_UNSAMPLED = ("-00", "-02")

SPAN = "otel.span"
TOKEN = "otel.token"
W3C_FIELDS = frozenset({"traceparent", "tracestate", "baggage"})
_w3c_checked: tuple[Any, bool] = (None, False)


def _default_propagation() -> bool:
    """Whether the global propagator is OTel's default W3C trace context + baggage pair.

    Then traceparent is written and read here directly (a fraction of the generic path's
    cost); any other propagator configuration goes through ``propagate``.
    """
    global _w3c_checked
    textmap = propagate.get_global_textmap()
    checked = _w3c_checked
    if checked[0] is not textmap:
        fast = type(textmap) is CompositePropagator and set(textmap.fields) == W3C_FIELDS
        checked = _w3c_checked = (textmap, fast)
    return checked[1]


# TraceIdRatioBased's rule, alone or as ParentBased's root (the SDK's own descriptions).
_RATIO_ROOT = re.compile(r"^(?:ParentBased\{root:)?TraceIdRatioBased\{([0-9.eE+-]+)\}")


class Sampling:
    """What the tracer provider's sampler does, read once per provider.

    ``sdk``: a real provider (not the API's no-op/proxy one). ``drops_unsampled``: every
    child of an unsampled parent is dropped (ParentBased), so such a trace passes its
    context on without spans. ``root_bound``: the root decision is TraceIdRatioBased's
    (sample iff the trace id's low 64 bits < bound), so a dropped root needs no SDK span:
    its ids are drawn from the provider's id generator and written by hand.
    ``final``: the provider is not the API's proxy, so it never changes (OTel sets the
    global provider once) and this reading holds for good.
    """

    def __init__(self, provider: Any) -> None:
        sampler = getattr(provider, "sampler", None)  # the SDK's; the API's has none
        self.final = not isinstance(provider, trace.ProxyTracerProvider)
        self.sdk = not isinstance(provider, (trace.NoOpTracerProvider, trace.ProxyTracerProvider))
        text = sampler.get_description() if sampler is not None else ""
        self.drops_unsampled = (
            "remoteParentNotSampled:AlwaysOffSampler" in text
            and "localParentNotSampled:AlwaysOffSampler" in text
        )
        # traceparent endings whose context passes through without a span: any without
        # an SDK, unsampled ones under ParentBased, none otherwise.
        self.pass_flags: tuple[str, ...] = (
            _ANY_FLAGS if not self.sdk else _UNSAMPLED if self.drops_unsampled else ()
        )
        self.root_bound: int | None = None
        self.ids: Any = None
        # The SDK's own RandomIdGenerator: its ids are random.getrandbits, drawn here directly.
        self.plain_ids = False
        self.root_format = ""
        self.tracer: Any = None
        ids = getattr(provider, "id_generator", None)
        match = _RATIO_ROOT.match(text)
        if match and ids is not None and "ParentBased" in text and self.drops_unsampled:
            rate = float(match.group(1))
            self.root_bound = round(rate * (_LIMIT + 1))
            self.ids = ids
            random_flag = getattr(ids, "is_trace_id_random", None)
            # W3C level 2: the SDK flags random trace ids (0x02) on every span it makes.
            self.dropped_flags = 2 if random_flag is not None and random_flag() else 0
            self.root_format = f"00-%032x-%016x-{self.dropped_flags:02x}"
            self.plain_ids = type(ids) is _sdk_random_ids()
            # Our own tracer: a sampled root gets the very trace id the decision was made on.
            self.tracer = provider.get_tracer("servicebus", VERSION)
            self.tracer.id_generator = _PresetIds(self.tracer.id_generator)


_LIMIT = (1 << 64) - 1
_getrandbits = random.getrandbits


def _sdk_random_ids() -> type | None:
    """The SDK's RandomIdGenerator class (None without the SDK)."""
    try:
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    except ImportError:  # pragma: no cover - a provider with a sampler comes with the SDK
        return None
    return RandomIdGenerator


class _PresetIds:
    """The SDK tracer's id generator, except that the next trace id may be given."""

    def __init__(self, ids: Any) -> None:
        self._ids = ids
        self._preset = threading.local()

    def give(self, trace_id: int) -> None:
        self._preset.trace_id = trace_id

    def generate_trace_id(self) -> int:
        preset = getattr(self._preset, "trace_id", 0)
        if preset:
            self._preset.trace_id = 0
            return int(preset)
        return int(self._ids.generate_trace_id())

    def generate_span_id(self) -> int:
        return int(self._ids.generate_span_id())

    def is_trace_id_random(self) -> bool:
        check = getattr(self._ids, "is_trace_id_random", None)
        return bool(check()) if check is not None else False


_sampling: tuple[Any, Sampling | None] = (None, None)
# The global provider once one is set (OTel allows setting it once); until then the
# API's proxy, looked up again at most once a second (the lookup reads the environment).
_global: tuple[Any, float] = (None, -1.0)


def global_provider() -> Any:
    """``trace.get_tracer_provider()``, without its cost on every call."""
    global _global
    provider, checked = _global
    if provider is not None and (
        not isinstance(provider, trace.ProxyTracerProvider) or time.monotonic() - checked < 1.0
    ):
        return provider
    provider = trace.get_tracer_provider()
    _global = (provider, time.monotonic())
    return provider


def sampling_of(provider: Any) -> Sampling:
    """The Sampling of ``provider`` (cached for the last provider asked about)."""
    global _sampling
    known_provider, known = _sampling
    if known is None or known_provider is not provider:
        known = Sampling(provider)
        _sampling = (provider, known)
    return known


def _inject(headers: dict[str, str], span: Any) -> None:
    if not _default_propagation() or baggage.get_all():
        propagate.inject(headers, context=trace.set_span_in_context(span))
        return
    ctx = span.get_span_context()
    if ctx.is_valid:
        headers["traceparent"] = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
        if ctx.trace_state:
            headers["tracestate"] = ctx.trace_state.to_header()


def _extract(headers: dict[str, str]) -> Any:
    """The parent context of an incoming request (empty when it carries none)."""
    traceparent = headers.get("traceparent")
    if traceparent is None:
        return otel_context.Context()
    if "baggage" in headers or not _default_propagation():
        return propagate.extract(headers, context=otel_context.Context())
    remote = _span_context(traceparent, headers.get("tracestate"))
    if remote is None:
        # Not the plain version-00 shape: the propagator decides (and rejects junk).
        return propagate.extract(headers, context=otel_context.Context())
    if not remote.is_valid:
        return otel_context.Context()
    return trace.set_span_in_context(NonRecordingSpan(remote), otel_context.Context())


class _LazySpan(NonRecordingSpan):
    """A span that records nothing and makes its SpanContext when first asked (``_make``).

    No NonRecordingSpan.__init__: it only stores the context, made here instead.
    """

    made: SpanContext | None = None

    def get_span_context(self) -> SpanContext:
        context = self.made
        if context is None:
            context = self.made = self._make()
        return context

    def _make(self) -> SpanContext:
        raise NotImplementedError


class _RemoteParent(_LazySpan):
    """An incoming parent that records nothing, read from its ``traceparent`` when first asked.

    Most handlers never ask (no nested call, no other instrumentation), so most requests of
    an unsampled trace never pay for parsing it and building its SpanContext.
    """

    def __init__(self, traceparent: str, tracestate: str | None) -> None:
        self.traceparent = traceparent
        self.tracestate = tracestate

    def _make(self) -> SpanContext:
        return _span_context(self.traceparent, self.tracestate) or trace.INVALID_SPAN_CONTEXT

    def __repr__(self) -> str:
        return f"_RemoteParent({self.traceparent!r})"


class _DroppedRoot(_LazySpan):
    """A new trace's root that the ratio sampler dropped (as the SDK's own dropped span,
    without the SDK's cost of making one)."""

    def __init__(self, trace_id: int, span_id: int, flags: int) -> None:
        self.ids = (trace_id, span_id, flags)

    def _make(self) -> SpanContext:
        trace_id, span_id, flags = self.ids
        return SpanContext(trace_id, span_id, is_remote=False, trace_flags=_FLAGS[flags])

    def __repr__(self) -> str:
        return f"_DroppedRoot({self.ids[0]:032x}-{self.ids[1]:016x})"


def _span_context(traceparent: str, tracestate: str | None) -> SpanContext | None:
    """The remote span context of a version-00 ``traceparent``: invalid for zero ids, None
    for any other shape (the propagator's to judge)."""
    ids = _parse(traceparent)
    if ids is None:
        return None
    if not ids[0] or not ids[1]:
        return trace.INVALID_SPAN_CONTEXT
    return SpanContext(
        ids[0],
        ids[1],
        is_remote=True,
        trace_flags=_FLAGS[ids[2]],
        trace_state=TraceState.from_header([tracestate]) if tracestate else None,
    )


_HEX = frozenset("0123456789abcdef")


def _parse(traceparent: str) -> tuple[int, int, int] | None:
    """(trace id, span id, flags) of a version-00 ``traceparent``; None for any other shape."""
    if (
        len(traceparent) != 55
        or not traceparent.startswith("00-")
        or traceparent[35] != "-"
        or traceparent[52] != "-"
        or not _HEX.issuperset(traceparent[3:35])
        or not _HEX.issuperset(traceparent[36:52])
        or not _HEX.issuperset(traceparent[53:])
    ):
        return None
    return int(traceparent[3:35], 16), int(traceparent[36:52], 16), int(traceparent[53:], 16)


def _dropped_root(sampling: Sampling) -> tuple[int, int] | None:
    """A new trace's (trace id, span id) when the ratio sampler drops it, decided as the
    SDK would; None when it is sampled (the SDK's span then gets that trace id)."""
    bound = sampling.root_bound or 0  # set whenever this runs
    if sampling.plain_ids:
        # The SDK's RandomIdGenerator, without its two Python frames per id.
        trace_id = _getrandbits(128)
        if trace_id & _LIMIT >= bound and trace_id:
            span_id = _getrandbits(64)
            return trace_id, span_id or sampling.ids.generate_span_id()
    else:
        trace_id = sampling.ids.generate_trace_id()
        if trace_id & _LIMIT >= bound:
            return trace_id, sampling.ids.generate_span_id()
    sampling.tracer.id_generator.give(trace_id or sampling.ids.generate_trace_id())
    return None


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class TracingHook:
    """Hook: CLIENT and SERVER spans with W3C trace context in the request headers."""

    def __init__(self, tracer_provider: Any = None) -> None:
        assert trace is not None
        self.provider = tracer_provider
        self.tracer = trace.get_tracer("servicebus", VERSION, tracer_provider=tracer_provider)
        self._known: Sampling | None = None

    def _sampling(self) -> Sampling:
        """The provider's Sampling, read once for a final provider (the hot paths check
        ``self._known.final`` themselves and call this only when it is not)."""
        known = self._known
        if known is None or not known.final:
            known = self._known = sampling_of(self.provider or global_provider())
        return known

    def _passes_through(self, span: Any, sampling: Sampling) -> bool:
        ctx = span.get_span_context()
        if not ctx.is_valid or ctx.trace_flags.sampled:
            return False
        return sampling.drops_unsampled

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
        """Start a CLIENT span (child of the current one) and put its context in the headers.

        Outside any span (an edge) a ``traceparent`` the caller passed is the parent.
        """
        headers = info.headers
        if not headers and not (_get_current() if _get_current else otel_context.get_current()):
            # The common edge: no span, no baggage, no headers at all (one dict check).
            known = self._known
            self._start_root(info, known if known is not None and known.final else self._sampling())
            return
        if (
            not otel_context.get_current()
            and "traceparent" not in headers
            and "tracestate" not in headers
        ):
            # No span, no baggage, no context given.
            self._start_root(info, self._sampling())
            return
        given: dict[str, str] = (
            {k: headers.pop(k) for k in ("traceparent", "tracestate") if k in headers}
            if "traceparent" in headers or "tracestate" in headers
            else {}
        )
        sampling = self._sampling()
        parent = None
        current = trace.get_current_span()
        if not current.get_span_context().is_valid:
            if given:
                parent = _extract(given)
                current = trace.get_current_span(parent)
            elif not baggage.get_all():
                self._start_root(info, sampling)
                return
            elif not sampling.sdk:
                return  # no SDK and no context: nothing to record, nothing to pass on
        if not sampling.sdk or self._passes_through(current, sampling):
            # No SDK, or an unsampled trace: its context goes on, no span.
            if current.get_span_context().is_valid:
                _inject(headers, current)
            else:
                headers.update(given)  # nothing better to send: the caller's own, as given
            return
        self._start_client(info, self.tracer, parent, given)

    def _start_root(self, info: CallInfo, sampling: Sampling) -> None:
        """A call that starts a new trace (no current span, no baggage, nothing given)."""
        if not sampling.sdk:
            return  # no SDK and no context: nothing to record, nothing to pass on
        if sampling.root_bound is None:
            self._start_client(info, self.tracer, None)
            return
        dropped = _dropped_root(sampling)
        if dropped is not None:
            # The context goes on by hand, no SDK span (its cost is the point).
            # %-formatting: a third cheaper than the f-string with format specs here.
            info.headers["traceparent"] = sampling.root_format % dropped
            return
        self._start_client(info, sampling.tracer, None)

    def _start_client(
        self, info: CallInfo, tracer: Any, parent: Any, given: dict[str, str] | None = None
    ) -> None:
        # Attributes at the start, as the API asks, so a sampler can read them (and the SDK
        # files them once instead of one locked set per attribute).
        span = tracer.start_span(
            f"{info.service}/{info.method}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=self._attributes(info),
            start_time=_ns(info.started),
        )
        if not span.get_span_context().is_valid:
            # No context to pass on: leave the caller's own headers as they were.
            info.headers.update(given or {})
            return
        info.state[SPAN] = span
        # Replaces whatever traceparent was set: the parent of the callee is this span.
        _inject(info.headers, span)

    def client_end(self, info: CallInfo) -> None:
        """End the CLIENT span with the call's outcome."""
        if not info.state:
            return
        span = info.state.pop(SPAN, None)
        if span is not None:
            self._end(span, info)

    def server_start(self, info: CallInfo) -> None:
        """Start a SERVER span from the incoming trace context and make it current."""
        sampling = self._known
        if sampling is None or not sampling.final:
            sampling = self._sampling()
        headers = info.headers
        traceparent = headers.get("traceparent")
        if traceparent is not None:
            flags = sampling.pass_flags
            if (
                flags
                and len(traceparent) == 55
                and traceparent.startswith("00-")
                and traceparent.endswith(flags)
                and "baggage" not in headers
                and _default_propagation()
            ):
                # A plain version-00 context that makes no span here (no SDK, or an
                # unsampled trace): it goes on to nested calls, its span read lazily.
                span = _RemoteParent(traceparent, headers.get("tracestate"))
                lazy = otel_context.Context({_SPAN_KEY: span})
                # The runtime's ContextVar set here, not through attach(): two frames less.
                info.state[TOKEN] = _CURRENT.set(lazy) if _CURRENT is not None else _attach(lazy)
                return
            if not sampling.sdk:
                # No SDK: no span to make, but an incoming context goes on to nested calls.
                info.state[TOKEN] = _attach(_extract(headers))
                return
        elif not sampling.sdk:
            return
        if traceparent is None and sampling.root_bound is not None:
            # A new trace starts here: the ratio sampler's decision, made as for a call.
            dropped = _dropped_root(sampling)
            if dropped is not None:
                root = _DroppedRoot(*dropped, sampling.dropped_flags)
                info.state[TOKEN] = _attach(otel_context.Context({_SPAN_KEY: root}))
                return
            self._start_server(info, sampling.tracer, None)
            return
        parent = _extract(headers)
        if self._passes_through(trace.get_current_span(parent), sampling):
            info.state[TOKEN] = _attach(parent)
            return
        self._start_server(info, self.tracer, parent)

    def _start_server(self, info: CallInfo, tracer: Any, parent: Any) -> None:
        attributes = self._attributes(info)
        attributes["servicebus.caller"] = info.caller
        span = tracer.start_span(
            f"{info.service}/{info.method}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=_ns(info.started),
        )
        info.state[SPAN] = span
        info.state[TOKEN] = _attach(trace.set_span_in_context(span, parent))

    def server_end(self, info: CallInfo) -> None:
        """End the SERVER span with the request's outcome."""
        if not info.state:
            return  # nothing was started (no SDK and no incoming context)
        state = info.state
        token = state.pop(TOKEN, None)
        if token is not None:
            if _CURRENT is not None and type(token) is contextvars.Token:
                # The runtime's ContextVar reset here, not through detach(): two frames less.
                try:
                    _CURRENT.reset(token)
                except (ValueError, RuntimeError):  # pragma: no cover - another context
                    pass
            else:
                otel_context.detach(token)
        if state:
            span = state.pop(SPAN, None)
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
