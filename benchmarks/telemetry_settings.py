"""Settings of benchmarks.telemetry: the benchmark project, telemetry set by BENCH_TELEMETRY."""

import os
from typing import Any

from benchmarks.project.settings import *  # noqa: F403
from benchmarks.project.settings import SERVICEBUS as _BASE


def mode_settings(mode: str) -> dict[str, Any]:
    """SERVICEBUS for one benchmark mode (see benchmarks/telemetry.py)."""
    on = {
        "off": {"TELEMETRY": False, "METRICS": False, "TRACING": False, "RECORD_CALLS": False},
        "metrics": {"METRICS": True, "TRACING": True, "RECORD_CALLS": False},
        "hooks": {"METRICS": False, "TRACING": False, "RECORD_CALLS": False},
        "prom": {"METRICS": True, "TRACING": False, "RECORD_CALLS": False},
        "tracing": {"METRICS": False, "TRACING": True, "RECORD_CALLS": False},
        "record": {"METRICS": False, "TRACING": False, "RECORD_CALLS": True},
        "all": {},
        # The defaults as a project without an OpenTelemetry SDK gets them (API no-op spans).
        "defaults": {},
    }[mode]
    return {**_BASE, **on}


def install_tracer_provider() -> None:
    """An SDK tracer provider whose batch processor drops every span (cost without I/O).

    BENCH_SAMPLE_RATIO (e.g. 0.01): sample that share of traces, as production setups do;
    default: every span is recorded.
    """
    from collections.abc import Sequence

    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Drop(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    sampler = None
    ratio = os.environ.get("BENCH_SAMPLE_RATIO")
    if ratio:
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        sampler = ParentBased(TraceIdRatioBased(float(ratio)))
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)


MODE = os.environ.get("BENCH_TELEMETRY", "all")
SERVICEBUS = mode_settings(MODE)
if MODE in ("metrics", "all", "tracing") and os.environ.get("DJANGO_SETTINGS_MODULE") == __name__:
    # The worker process: a provider before the hooks are made (apps.ready).
    install_tracer_provider()
