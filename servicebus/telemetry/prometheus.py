"""Prometheus metrics (extra ``servicebus[prometheus]``): a collector over the stats hook.

Series (a contract, docs/operations.md): ``servicebus_requests_total{service,method,code}``,
``servicebus_request_duration_seconds{service,method}``, ``servicebus_inflight_requests
{service}``, ``servicebus_worker_concurrency{service}``, ``servicebus_calls_total{service,
method,code}``, ``servicebus_call_duration_seconds{service,method}``,
``servicebus_dropped_total{reason}``, ``servicebus_channel_backlog{channel}``.

Nothing runs per call here: the stats hook already counts every outcome in fixed latency
buckets, and a scrape turns those counts into series. Label values are the stats hook's
bounded ones (servicebus.telemetry.labels): an unknown method is ``_unknown``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from servicebus.telemetry.stats import BOUNDS, Stats, stats

try:
    import prometheus_client
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
except ImportError:  # the extra is not installed: metrics are off
    prometheus_client = None  # type: ignore[assignment]

MISSING = "metrics need prometheus_client: install the extra servicebus[prometheus]"
# Histogram `le` bounds: every 4th stats bucket (x2.44 apart, 100 µs to 65 s), so the
# cumulative counts are exact, not interpolated.
LE_INDEXES = tuple(range(0, len(BOUNDS), 4))


def _le(index: int) -> str:
    return repr(round(BOUNDS[index], 6))


def _buckets(hist: list[int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    seen, at = 0, 0
    for index in LE_INDEXES:
        while at <= index:
            seen += hist[at]
            at += 1
        out.append((_le(index), float(seen)))
    out.append(("+Inf", float(sum(hist))))
    return out


class StatsCollector:
    """A Prometheus collector that reads ``Stats.export()`` at scrape time."""

    def __init__(self, source: Stats) -> None:
        self.source = source

    def describe(self) -> list[Any]:
        """No fixed description: series appear as calls are made (no registration scrape)."""
        return []

    def collect(self) -> Iterator[Any]:
        """The eight servicebus series from the current figures."""
        data = self.source.export()
        requests = CounterMetricFamily(
            "servicebus_requests",
            "Requests handled, by outcome code (ok or the error code).",
            labels=["service", "method", "code"],
        )
        durations = HistogramMetricFamily(
            "servicebus_request_duration_seconds",
            "Time to handle a request, from dispatch to reply.",
            labels=["service", "method"],
        )
        inflight = GaugeMetricFamily(
            "servicebus_inflight_requests", "Requests being handled now.", labels=["service"]
        )
        concurrency = GaugeMetricFamily(
            "servicebus_worker_concurrency",
            "Requests a worker handles at once.",
            labels=["service"],
        )
        for service, svc in sorted(data["services"].items()):
            inflight.add_metric([service], svc["in_flight"])
            if svc["concurrency"]:
                concurrency.add_metric([service], svc["concurrency"])
            for method, codes in sorted(svc["codes"].items()):
                for code, count in sorted(codes.items()):
                    requests.add_metric([service, method, code], count)
                durations.add_metric(
                    [service, method],
                    buckets=_buckets(svc["latency"][method]),
                    sum_value=svc["seconds"][method],
                )
        calls = CounterMetricFamily(
            "servicebus_calls",
            "Calls made, by outcome code (ok, timeout, backpressure, unavailable, ...).",
            labels=["service", "method", "code"],
        )
        for (service, method, code), count in sorted(data["calls"].items()):
            calls.add_metric([service, method, code], count)
        call_durations = HistogramMetricFamily(
            "servicebus_call_duration_seconds",
            "Time from sending a request to its reply or error.",
            labels=["service", "method"],
        )
        for (service, method), hist in sorted(data["call_latency"].items()):
            call_durations.add_metric(
                [service, method],
                buckets=_buckets(hist),
                sum_value=data["call_seconds"][(service, method)],
            )
        dropped = CounterMetricFamily(
            "servicebus_dropped",
            "Messages the bus dropped, by reason (expired, malformed, late, ...).",
            labels=["reason"],
        )
        for reason, count in sorted(data["drops"].items()):
            dropped.add_metric([reason], count)
        backlog = GaugeMetricFamily(
            "servicebus_channel_backlog",
            "Messages waiting in a request channel.",
            labels=["channel"],
        )
        for channel, waiting in sorted(data["backlog"].items()):
            backlog.add_metric([channel], waiting)
        yield from (requests, durations, inflight, concurrency, calls, call_durations, dropped,
                    backlog)  # fmt: skip


_registered: dict[int, StatsCollector] = {}
_lock = threading.Lock()


def enable(registry: Any = None) -> bool:
    """Expose the stats as Prometheus series in ``registry`` (default: the global one), once.

    False when prometheus_client is not installed.
    """
    if prometheus_client is None:
        return False
    registry = registry or prometheus_client.REGISTRY
    with _lock:
        if id(registry) not in _registered:
            collector = StatsCollector(stats)
            registry.register(collector)
            _registered[id(registry)] = collector
    return True


def parse_address(value: str) -> tuple[str, int]:
    """``PORT`` or ``ADDR:PORT`` -> (addr, port); the address defaults to 127.0.0.1."""
    addr, _, port = value.rpartition(":")
    return addr.strip("[]") or "127.0.0.1", int(port)


def serve(address: str | int) -> Any:
    """Serve GET /metrics on ``[ADDR:]PORT`` in a daemon thread; returns the server."""
    if prometheus_client is None:
        raise RuntimeError(MISSING)
    enable()
    addr, port = parse_address(str(address))
    server, _thread = prometheus_client.start_http_server(port, addr=addr)
    return server


def exposition() -> tuple[bytes, str]:
    """(body, content type) of the current metrics, for the Django view."""
    if prometheus_client is None:
        raise RuntimeError(MISSING)
    enable()
    return prometheus_client.generate_latest(), prometheus_client.CONTENT_TYPE_LATEST
