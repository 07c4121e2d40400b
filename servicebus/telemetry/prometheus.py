"""Prometheus metrics (extra ``servicebus[prometheus]``): the hook and the /metrics server.

Series (a contract, docs/operations.md): ``servicebus_requests_total{service,method,code}``,
``servicebus_request_duration_seconds{service,method}``, ``servicebus_inflight_requests
{service}``, ``servicebus_worker_concurrency{service}``, ``servicebus_calls_total{service,
method,code}``, ``servicebus_call_duration_seconds{service,method}``,
``servicebus_dropped_total{reason}``, ``servicebus_channel_backlog{channel}``. Label values
are bounded (servicebus.telemetry.labels): an unknown method is ``_unknown``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from servicebus.telemetry import labels
from servicebus.telemetry.types import CallInfo

try:
    import prometheus_client
except ImportError:  # the extra is not installed: hook() is None, metrics are off
    prometheus_client = None  # type: ignore[assignment]

MISSING = "metrics need prometheus_client: install the extra servicebus[prometheus]"
# RPC over Redis on loopback answers in well under a millisecond: start the buckets low.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusHook:
    """Hook: counts and times every handled request and every call; drops by reason."""

    def __init__(self, registry: Any = None) -> None:
        assert prometheus_client is not None
        p = prometheus_client
        registry = registry or p.REGISTRY
        self.requests = p.Counter(
            "servicebus_requests_total",
            "Requests handled, by outcome code (ok or the error code).",
            ["service", "method", "code"],
            registry=registry,
        )
        self.request_duration = p.Histogram(
            "servicebus_request_duration_seconds",
            "Time to handle a request, from dispatch to reply.",
            ["service", "method"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.inflight = p.Gauge(
            "servicebus_inflight_requests",
            "Requests being handled now.",
            ["service"],
            registry=registry,
        )
        self.concurrency = p.Gauge(
            "servicebus_worker_concurrency",
            "Requests a worker handles at once.",
            ["service"],
            registry=registry,
        )
        self.calls = p.Counter(
            "servicebus_calls_total",
            "Calls made, by outcome code (ok, timeout, backpressure, unavailable, ...).",
            ["service", "method", "code"],
            registry=registry,
        )
        self.call_duration = p.Histogram(
            "servicebus_call_duration_seconds",
            "Time from sending a request to its reply or error.",
            ["service", "method"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.dropped_total = p.Counter(
            "servicebus_dropped_total",
            "Messages the bus dropped, by reason (expired, malformed, late_reply, ...).",
            ["reason"],
            registry=registry,
        )
        self.backlog = p.Gauge(
            "servicebus_channel_backlog",
            "Messages waiting in a request channel.",
            ["channel"],
            registry=registry,
        )
        # Label children cached by their values: .labels() takes a lock and builds a key.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children[key] = metric.labels(*values)
        return child

    def server_start(self, info: CallInfo) -> None:
        """One more request in flight."""
        self._child(self.inflight, info.service).inc()

    def server_end(self, info: CallInfo) -> None:
        """Count and time a handled request."""
        method = labels.method_label(info.service, info.method, info.code)
        code = labels.code_label(info.code)
        self._child(self.inflight, info.service).dec()
        self._child(self.requests, info.service, method, code).inc()
        self._child(self.request_duration, info.service, method).observe(info.duration)

    def client_end(self, info: CallInfo) -> None:
        """Count and time a call this process made."""
        method = labels.method_label(info.service, info.method, info.code)
        self._child(self.calls, info.service, method, labels.code_label(info.code)).inc()
        self._child(self.call_duration, info.service, method).observe(info.duration)

    def dropped(self, reason: str, where: str, count: int) -> None:
        """Count dropped messages by reason."""
        self._child(self.dropped_total, labels.reason_label(reason)).inc(count)


_hook: PrometheusHook | None = None
_hook_lock = threading.Lock()


def hook() -> PrometheusHook | None:
    """The process's Prometheus hook (created once), or None without prometheus_client."""
    global _hook
    if prometheus_client is None:
        return None
    with _hook_lock:
        if _hook is None:
            _hook = PrometheusHook()
    return _hook


def set_concurrency(services: Iterable[str], concurrency: int) -> None:
    """Publish the worker's concurrency for each service it serves."""
    h = hook()
    if h is not None:
        for service in services:
            h.concurrency.labels(service).set(concurrency)


def set_backlog(channel: str, waiting: int) -> None:
    """Publish a request channel's backlog (the heartbeat measures it)."""
    h = hook()
    if h is not None:
        h.backlog.labels(channel).set(waiting)


def parse_address(value: str) -> tuple[str, int]:
    """``PORT`` or ``ADDR:PORT`` -> (addr, port); the address defaults to 127.0.0.1."""
    addr, _, port = value.rpartition(":")
    return addr.strip("[]") or "127.0.0.1", int(port)


def serve(address: str | int) -> Any:
    """Serve GET /metrics on ``[ADDR:]PORT`` in a daemon thread; returns the server."""
    if prometheus_client is None:
        raise RuntimeError(
            "--metrics-port needs prometheus_client: pip install servicebus[prometheus]"
        )
    hook()
    addr, port = parse_address(str(address))
    server, _thread = prometheus_client.start_http_server(port, addr=addr)
    return server


def exposition() -> tuple[bytes, str]:
    """(body, content type) of the current metrics, for the Django view."""
    if prometheus_client is None:
        raise RuntimeError(
            "the metrics view needs prometheus_client: pip install servicebus[prometheus]"
        )
    hook()
    return prometheus_client.generate_latest(), prometheus_client.CONTENT_TYPE_LATEST
