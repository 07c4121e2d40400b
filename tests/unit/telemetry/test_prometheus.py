"""The Prometheus hook: exact series names, bounded labels, the Django view."""

from __future__ import annotations

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from django.test import RequestFactory  # noqa: E402

from servicebus.telemetry import labels, prometheus  # noqa: E402
from servicebus.telemetry.views import metrics  # noqa: E402
from tests.unit.telemetry.helpers import Info  # noqa: E402


@pytest.fixture
def hook() -> tuple[prometheus.PrometheusHook, object]:
    registry = prometheus_client.CollectorRegistry()
    return prometheus.PrometheusHook(registry), registry


def value(registry: object, name: str, **label_values: str) -> float | None:
    return registry.get_sample_value(name, label_values)  # type: ignore[attr-defined]


def test_series_names_and_values(hook: tuple[prometheus.PrometheusHook, object]) -> None:
    h, reg = hook
    info = Info(duration=0.003)
    h.server_start(info)
    assert value(reg, "servicebus_inflight_requests", service="inventory") == 1
    h.server_end(info)
    h.server_end(Info(code="out_of_stock"))
    h.client_end(Info(kind="client", service="pricing", method="quote", code="timeout"))
    h.dropped("group_member_full", "layer", 7)
    assert value(reg, "servicebus_requests_total", service="inventory", method="allocate",
                 code="ok") == 1  # fmt: skip
    assert value(reg, "servicebus_requests_total", service="inventory", method="allocate",
                 code="out_of_stock") == 1  # fmt: skip
    assert value(reg, "servicebus_request_duration_seconds_count", service="inventory",
                 method="allocate") == 2  # fmt: skip
    assert value(reg, "servicebus_calls_total", service="pricing", method="quote",
                 code="timeout") == 1  # fmt: skip
    assert value(reg, "servicebus_call_duration_seconds_count", service="pricing",
                 method="quote") == 1  # fmt: skip
    assert value(reg, "servicebus_dropped_total", reason="group_member_full") == 7
    h.concurrency.labels("inventory").set(64)
    h.backlog.labels("inventory.request").set(3)
    assert value(reg, "servicebus_worker_concurrency", service="inventory") == 64
    assert value(reg, "servicebus_channel_backlog", channel="inventory.request") == 3


def test_no_label_explosion(hook: tuple[prometheus.PrometheusHook, object]) -> None:
    h, reg = hook
    labels.methods.clear()
    for i in range(2000):
        h.server_end(Info(method=f"m{i}", code="method_not_found"))
        h.server_end(Info(method="é" * 3 + str(i), code=f"code{i}"))
    samples = [
        s
        for m in reg.collect()
        for s in m.samples  # type: ignore[attr-defined]
        if s.name == "servicebus_requests_total"
    ]
    assert {s.labels["method"] for s in samples} == {labels.UNKNOWN}
    assert len(samples) <= labels.MAX_CODES + 1


def test_metrics_view_serves_the_exposition() -> None:
    prometheus.hook()
    response = metrics(RequestFactory().get("/metrics"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"servicebus_requests_total" in response.content


def test_parse_address() -> None:
    assert prometheus.parse_address("9100") == ("127.0.0.1", 9100)
    assert prometheus.parse_address("0.0.0.0:9100") == ("0.0.0.0", 9100)
