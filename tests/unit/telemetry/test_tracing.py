"""The tracing hook with the OTel SDK's in-memory exporter: spans, parents, headers, status."""

from __future__ import annotations

import time

import pytest
from django.test import override_settings

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from servicebus.telemetry import tracing
from tests.unit.telemetry.helpers import Info

Traced = tuple[tracing.TracingHook, InMemorySpanExporter]


@pytest.fixture
def traced() -> Traced:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracing.TracingHook(provider), exporter


def test_client_server_nested_chain(
    traced: tuple[tracing.TracingHook, InMemorySpanExporter],
) -> None:
    hook, exporter = traced
    # Caller A calls B; B's handler calls C with an inherited, stale traceparent.
    a_call = Info(kind="client", service="b", method="work", headers={})
    hook.client_start(a_call)
    assert a_call.headers["traceparent"].startswith("00-")
    b_serve = Info(kind="server", service="b", method="work", headers=dict(a_call.headers))
    hook.server_start(b_serve)
    stale = "00-11111111111111111111111111111111-2222222222222222-01"
    b_call = Info(kind="client", service="c", method="leaf", headers={"traceparent": stale})
    hook.client_start(b_call)
    assert b_call.headers["traceparent"] != stale
    c_serve = Info(kind="server", service="c", method="leaf", headers=dict(b_call.headers),
                   code="out_of_stock")  # fmt: skip
    hook.server_start(c_serve)
    hook.server_end(c_serve)
    b_call.code = "out_of_stock"
    hook.client_end(b_call)
    hook.server_end(b_serve)
    hook.client_end(a_call)
    spans = {(s.name, s.kind): s for s in exporter.get_finished_spans()}
    a = spans[("b/work", SpanKind.CLIENT)]
    b = spans[("b/work", SpanKind.SERVER)]
    bc = spans[("c/leaf", SpanKind.CLIENT)]
    c = spans[("c/leaf", SpanKind.SERVER)]
    assert len({s.context.trace_id for s in (a, b, bc, c)}) == 1
    assert b.parent.span_id == a.context.span_id
    assert bc.parent.span_id == b.context.span_id
    assert c.parent.span_id == bc.context.span_id
    assert c.status.status_code is StatusCode.ERROR and bc.status.status_code is StatusCode.ERROR
    assert b.status.status_code is StatusCode.UNSET
    assert c.attributes["rpc.system"] == "servicebus"
    assert c.attributes["rpc.service"] == "c" and c.attributes["rpc.method"] == "leaf"
    assert c.attributes["servicebus.code"] == "out_of_stock"


def test_span_times_come_from_the_call(
    traced: tuple[tracing.TracingHook, InMemorySpanExporter],
) -> None:
    hook, exporter = traced
    info = Info(kind="server", started=time.time() - 1, duration=0.25)
    hook.server_start(info)
    hook.server_end(info)
    [span] = exporter.get_finished_spans()
    assert span.end_time - span.start_time == pytest.approx(0.25e9, rel=1e-3)


def test_switch_off() -> None:
    with override_settings(SERVICEBUS={"TRACING": False}):
        assert tracing.hook() is None
    with override_settings(SERVICEBUS={"TRACING": True}):
        assert isinstance(tracing.hook(), tracing.TracingHook)


def test_outbox_events_carry_the_trace() -> None:
    # A local provider: a process-wide one would put traceparent into every other test.
    from servicebus.outbox.codec import Event

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("publisher") as publisher:
        headers = tracing.inject({"correlation_id": "c1"})
    assert headers["traceparent"].split("-")[2] == format(
        publisher.get_span_context().span_id, "016x"
    )
    one = Event(id="1", topic="t", key="k", payload={}, headers=headers, created_at="")
    with tracing.consuming("t", [one], provider):
        pass
    with tracing.consuming("t", [one, one], provider):
        pass
    single, batch = [s for s in exporter.get_finished_spans() if s.name == "t process"]
    assert single.parent.span_id == publisher.get_span_context().span_id
    assert single.context.trace_id == publisher.get_span_context().trace_id
    assert [link.context.span_id for link in batch.links] == [
        publisher.get_span_context().span_id
    ] * 2


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
         "tracestate": "congo=t61rcWkgMzE"},
        {"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"},
        {"traceparent": "junk"},
        {"traceparent": "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
         "baggage": "user=1"},
    ],
)  # fmt: skip
def test_fast_extract_agrees_with_the_propagator(headers: dict[str, str]) -> None:
    from opentelemetry import propagate, trace

    ours = trace.get_current_span(tracing._extract(headers)).get_span_context()
    theirs = trace.get_current_span(propagate.extract(headers)).get_span_context()
    assert (ours.trace_id, ours.span_id, ours.trace_flags, ours.is_valid) == (
        theirs.trace_id, theirs.span_id, theirs.trace_flags, theirs.is_valid,
    )  # fmt: skip
    assert ours.trace_state == theirs.trace_state


def test_fast_inject_agrees_with_the_propagator(traced: Traced) -> None:
    from opentelemetry import propagate, trace

    hook, _ = traced
    span = hook.tracer.start_span("x")
    ours: dict[str, str] = {}
    tracing._inject(ours, span)
    theirs: dict[str, str] = {}
    propagate.inject(theirs, context=trace.set_span_in_context(span))
    assert ours == theirs and "traceparent" in ours


def test_unsampled_trace_passes_through_without_spans() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    hook = tracing.TracingHook(provider)
    root = Info(kind="client", service="b", method="work")
    hook.client_start(root)  # the sampler says no at the root
    incoming = root.headers["traceparent"]
    assert incoming.endswith("-00") or incoming.endswith("-02")
    serve = Info(kind="server", service="b", method="work", headers=dict(root.headers))
    hook.server_start(serve)
    nested = Info(kind="client", service="c", method="leaf")
    hook.client_start(nested)
    hook.client_end(nested)
    hook.server_end(serve)
    hook.client_end(root)
    # The same trace and parent ids go on; nothing is recorded anywhere.
    assert nested.headers["traceparent"] == incoming
    assert exporter.get_finished_spans() == ()


def test_edge_traceparent_is_the_parent(traced: Traced) -> None:
    hook, exporter = traced
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    call = Info(kind="client", headers={"traceparent": given, "x-tenant": "acme"})
    hook.client_start(call)
    hook.client_end(call)
    [span] = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert call.headers["traceparent"].split("-")[2] == format(span.context.span_id, "016x")
    assert call.headers["x-tenant"] == "acme"


def test_without_sdk_the_context_passes_through() -> None:
    hook = tracing.TracingHook()  # the global provider: the API's no-op one in unit tests
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    serve = Info(kind="server", headers={"traceparent": given})
    hook.server_start(serve)
    nested = Info(kind="client")
    hook.client_start(nested)
    hook.client_end(nested)
    hook.server_end(serve)
    assert nested.headers["traceparent"] == given
    edge = Info(kind="client", headers={"traceparent": "junk"})
    hook.client_start(edge)
    assert edge.headers == {"traceparent": "junk"}  # nothing better to send: left alone


def _ratio_provider(rate: float) -> tuple[TracerProvider, InMemorySpanExporter, list[int]]:
    """A provider sampling ``rate`` of new traces (ParentBased), counting sampler calls."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    exporter = InMemorySpanExporter()
    sampler = ParentBased(TraceIdRatioBased(rate))
    asked: list[int] = []
    should_sample = sampler.should_sample

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(1)
        return should_sample(*args, **kwargs)

    sampler.should_sample = counting  # type: ignore[method-assign]
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter, asked


def test_a_dropped_new_trace_costs_no_sdk_span_and_still_passes_on_its_context() -> None:
    provider, exporter, asked = _ratio_provider(0.0)
    hook = tracing.TracingHook(provider)
    root = Info(kind="client", service="b", method="work")
    hook.client_start(root)
    hook.client_end(root)
    version, trace_id, span_id, flags = root.headers["traceparent"].split("-")
    assert (version, len(trace_id), len(span_id)) == ("00", 32, 16)
    assert int(flags, 16) & 1 == 0  # not sampled
    assert asked == []  # decided without the SDK's sampler or span
    # The callee sees an unsampled parent: no span there either, and its nested call
    # carries the same context on.
    serve = Info(kind="server", service="b", method="work", headers=dict(root.headers))
    hook.server_start(serve)
    nested = Info(kind="client", service="c", method="leaf")
    hook.client_start(nested)
    hook.client_end(nested)
    hook.server_end(serve)
    assert nested.headers["traceparent"] == root.headers["traceparent"]
    assert exporter.get_finished_spans() == ()


def test_ratio_sampling_by_hand_keeps_the_samplers_rate_and_trace_ids() -> None:
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    provider, exporter, _ = _ratio_provider(0.25)
    hook = tracing.TracingHook(provider)
    bound = TraceIdRatioBased.get_bound_for_rate(0.25)
    sampled = 0
    for _ in range(2_000):
        call = Info(kind="client", service="b", method="work")
        hook.client_start(call)
        hook.client_end(call)
        trace_id = int(call.headers["traceparent"].split("-")[1], 16)
        is_sampled = bool(int(call.headers["traceparent"].split("-")[3], 16) & 1)
        # The decision is TraceIdRatioBased's own, on the trace id that travels.
        assert is_sampled == ((trace_id & TraceIdRatioBased.TRACE_ID_LIMIT) < bound)
        sampled += is_sampled
    spans = exporter.get_finished_spans()
    assert len(spans) == sampled
    assert 0.2 < sampled / 2_000 < 0.3
    assert all((s.context.trace_id & TraceIdRatioBased.TRACE_ID_LIMIT) < bound for s in spans)


def test_dropped_roots_draw_their_ids_from_the_providers_id_generator() -> None:
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class Counting(IdGenerator):
        """Ids 1, 2, 3, ... (never sampled at rate 0)."""

        def __init__(self) -> None:
            self.last = 0

        def generate_trace_id(self) -> int:
            self.last += 1
            return self.last

        def generate_span_id(self) -> int:
            self.last += 1
            return self.last

    ids = Counting()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)), id_generator=ids)
    hook = tracing.TracingHook(provider)
    calls = [Info(kind="client", service="b", method="work") for _ in range(2)]
    for call in calls:
        hook.client_start(call)
        hook.client_end(call)
    assert [c.headers["traceparent"] for c in calls] == [
        f"00-{1:032x}-{2:016x}-00",
        f"00-{3:032x}-{4:016x}-00",
    ]


def test_dropped_roots_with_the_sdks_random_ids_draw_them_as_it_does() -> None:
    import random

    provider, _, _ = _ratio_provider(0.0)
    hook = tracing.TracingHook(provider)
    call = Info(kind="client", service="b", method="work")
    random.seed(7)
    hook.client_start(call)
    random.seed(7)
    expected = (random.getrandbits(128), random.getrandbits(64))
    _, trace_id, span_id, flags = call.headers["traceparent"].split("-")
    assert (int(trace_id, 16), int(span_id, 16)) == expected
    # The random-trace-id flag (0x02) where the SDK sets it on its own spans.
    random_ids = getattr(provider.id_generator, "is_trace_id_random", lambda: False)()
    assert flags == ("02" if random_ids else "00")


def test_without_sdk_a_request_without_context_costs_nothing() -> None:
    hook = tracing.TracingHook()  # the API's no-op provider in unit tests
    serve = Info(kind="server", headers={"x-tenant": "acme"})
    hook.server_start(serve)
    assert serve.state == {}
    call = Info(kind="client")
    hook.client_start(call)
    assert call.headers == {} and call.state == {}
    hook.client_end(call)
    hook.server_end(serve)


def test_an_unsampled_parent_is_current_for_other_instrumentation_in_the_handler() -> None:
    # The worker files an unsampled parent without parsing it (read when first asked): a
    # span of other instrumentation in the handler still joins that trace, unsampled.
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    hook = tracing.TracingHook(provider)
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    serve = Info(kind="server", headers={"traceparent": given, "tracestate": "k=v"})
    hook.server_start(serve)
    parent = trace.get_current_span().get_span_context()
    assert format(parent.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(parent.span_id, "016x") == "b7ad6b7169203331"
    assert parent.is_remote and not parent.trace_flags.sampled
    assert parent.trace_state.to_header() == "k=v"
    inner = provider.get_tracer("other").start_span("db query")
    assert inner.get_span_context().trace_id == parent.trace_id
    assert not inner.is_recording()  # ParentBased: an unsampled parent's child is dropped
    inner.end()
    hook.server_end(serve)
    assert not trace.get_current_span().get_span_context().is_valid  # detached again
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    "junk",
    [
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-00",  # upper case: not W3C
        "00-00000000000000000000000000000000-b7ad6b7169203331-00",  # invalid trace id
        "00-0af7651916cd43dd8448eb211c80319c-000000000000000g-00",  # not hex
    ],
)
def test_a_plain_shaped_but_invalid_unsampled_parent_is_no_parent(junk: str) -> None:
    from opentelemetry import propagate, trace
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    hook = tracing.TracingHook(TracerProvider(sampler=ParentBased(ALWAYS_ON)))
    serve = Info(kind="server", headers={"traceparent": junk})
    hook.server_start(serve)
    ours = trace.get_current_span().get_span_context()
    hook.server_end(serve)
    theirs = trace.get_current_span(propagate.extract({"traceparent": junk})).get_span_context()
    assert not ours.is_valid and not theirs.is_valid  # as the propagator decides


def test_a_request_without_context_starts_a_dropped_trace_without_an_sdk_span() -> None:
    from opentelemetry import trace

    provider, exporter, asked = _ratio_provider(0.0)
    hook = tracing.TracingHook(provider)
    serve = Info(kind="server", service="b", method="work")
    hook.server_start(serve)
    root = trace.get_current_span().get_span_context()
    assert root.is_valid and not root.is_remote and not root.trace_flags.sampled
    nested = Info(kind="client", service="c", method="leaf")
    hook.client_start(nested)
    hook.client_end(nested)
    hook.server_end(serve)
    # The handler's nested call carries the new trace on, unsampled, as the SDK's own
    # dropped root would, with no sampler call and no span made.
    assert nested.headers["traceparent"] == (
        f"00-{root.trace_id:032x}-{root.span_id:016x}-{int(root.trace_flags):02x}"
    )
    assert asked == [] and exporter.get_finished_spans() == ()
    assert not trace.get_current_span().get_span_context().is_valid  # detached again


def test_a_sampled_trace_started_by_a_request_is_a_root_server_span() -> None:
    provider, exporter, _ = _ratio_provider(1.0)
    hook = tracing.TracingHook(provider)
    serve = Info(kind="server", service="b", method="work")
    hook.server_start(serve)
    nested = Info(kind="client", service="c", method="leaf")
    hook.client_start(nested)
    hook.client_end(nested)
    hook.server_end(serve)
    server, client = sorted(exporter.get_finished_spans(), key=lambda s: s.kind.value)
    assert (server.kind, client.kind) == (SpanKind.SERVER, SpanKind.CLIENT)
    assert server.parent is None and server.name == "b/work"
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert nested.headers["traceparent"].split("-")[1] == f"{server.context.trace_id:032x}"
