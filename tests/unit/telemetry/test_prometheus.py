"""Prometheus series from the stats hook: exact names, exact buckets, bounded labels, the view."""

from __future__ import annotations

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from django.test import RequestFactory  # noqa: E402

from servicebus.telemetry import labels, prometheus  # noqa: E402
from servicebus.telemetry.stats import Stats  # noqa: E402
from servicebus.telemetry.views import metrics  # noqa: E402
from tests.unit.telemetry.helpers import Info  # noqa: E402


@pytest.fixture
def setup() -> tuple[Stats, object]:
    source = Stats()
    registry = prometheus_client.CollectorRegistry()
    registry.register(prometheus.StatsCollector(source))
    return source, registry


def value(registry: object, name: str, **label_values: str) -> float | None:
    return registry.get_sample_value(name, label_values)  # type: ignore[attr-defined]


def test_series_names_and_values(setup: tuple[Stats, object]) -> None:
    s, reg = setup
    info = Info(duration=0.003)
    s.server_start(info)
    assert value(reg, "servicebus_inflight_requests", service="inventory") == 1
    s.server_end(info)
    s.server_start(Info())
    s.server_end(Info(code="out_of_stock", duration=2.0))
    s.client_end(Info(kind="client", service="pricing", method="quote", code="timeout"))
    s.dropped("group_member_full", "layer", 7)
    s.set_concurrency("inventory", 64)
    s.set_backlog("inventory.request", 3)
    assert value(reg, "servicebus_requests_total", service="inventory", method="allocate",
                 code="ok") == 1  # fmt: skip
    assert value(reg, "servicebus_requests_total", service="inventory", method="allocate",
                 code="out_of_stock") == 1  # fmt: skip
    assert value(reg, "servicebus_inflight_requests", service="inventory") == 0
    hist = {"service": "inventory", "method": "allocate"}
    assert value(reg, "servicebus_request_duration_seconds_count", **hist) == 2
    assert value(reg, "servicebus_request_duration_seconds_sum", **hist) == pytest.approx(2.003)
    # Exact cumulative counts at the bucket bounds: 3 ms is under 3.55 ms, 2 s is not.
    assert value(reg, "servicebus_request_duration_seconds_bucket", le="0.003553", **hist) == 1
    assert value(reg, "servicebus_request_duration_seconds_bucket", le="+Inf", **hist) == 2
    assert value(reg, "servicebus_calls_total", service="pricing", method="quote",
                 code="timeout") == 1  # fmt: skip
    assert value(reg, "servicebus_call_duration_seconds_count", service="pricing",
                 method="quote") == 1  # fmt: skip
    assert value(reg, "servicebus_dropped_total", reason="group_member_full") == 7
    assert value(reg, "servicebus_worker_concurrency", service="inventory") == 64
    assert value(reg, "servicebus_channel_backlog", channel="inventory.request") == 3


def test_no_label_explosion(setup: tuple[Stats, object]) -> None:
    s, reg = setup
    for i in range(2000):
        s.server_start(Info())
        s.server_end(Info(method=f"m{i}", code="method_not_found"))
        s.server_start(Info())
        s.server_end(Info(method="é" * 3 + str(i), code=f"code{i}"))
    samples = [
        x
        for m in reg.collect()
        for x in m.samples  # type: ignore[attr-defined]
        if x.name == "servicebus_requests_total"
    ]
    assert {x.labels["method"] for x in samples} == {labels.UNKNOWN}
    assert len(samples) <= labels.MAX_CODES + 2


def test_metrics_view_serves_the_exposition() -> None:
    assert prometheus.enable()
    response = metrics(RequestFactory().get("/metrics"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"# TYPE servicebus_requests_total counter" in response.content


def test_parse_address() -> None:
    assert prometheus.parse_address("9100") == ("127.0.0.1", 9100)
    assert prometheus.parse_address("0.0.0.0:9100") == ("0.0.0.0", 9100)
