"""What each page shows, from canned telemetry figures; and the JSON API's answers."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.unit.dashboard.conftest import SAMPLE

pytestmark = pytest.mark.django_db


def page(client: Client, url: str) -> str:
    resp = client.get(url)
    assert resp.status_code == 200, resp.content[:300]
    return resp.content.decode()


def test_overview(telemetry: Any, staff_client: Client) -> None:
    html = page(staff_client, "/bus/")
    assert 'data-service="orders"' in html
    assert html.count('<tr class="instance') == 2
    assert html.count('class="instance stale"') == 1
    assert "12.5" in html and "30 ms" in html  # calls/s, p99
    assert html.count("<svg") == 4  # calls/s, errors/s, p50, p99 over 15 minutes
    assert 'aria-label="last 59 points, max 58"' in html  # 15 s counts as calls/s
    assert 'data-ws="/bus/ws"' in html and 'data-view="overview"' in html


def test_service(telemetry: Any, staff_client: Client) -> None:
    html = page(staff_client, "/bus/services/orders")
    assert '<tr class="method" data-method="place">' in html  # live figures
    assert '<tr class="method-doc" data-method="place">' in html  # reference, from _info
    assert "Place an order." in html
    assert telemetry.calls == [("service", {"name": "orders", "ask": True})]
    assert "card_declined 1" in html
    assert "&quot;type&quot;: &quot;object&quot;" in html  # schema, escaped


def test_unknown_service(telemetry: Any, staff_client: Client) -> None:
    assert "No service named <b>ghost</b>" in page(staff_client, "/bus/services/ghost")
    resp = staff_client.get("/bus/api/services/ghost")
    assert resp.status_code == 404 and resp.json()["error"] == "not_found"


def test_trace_waterfall(telemetry: Any, staff_client: Client) -> None:
    html = page(staff_client, "/bus/traces/cid-1")
    assert 'data-call="inventory.allocate"' in html and 'data-call="pricing.charge"' in html
    assert 'class="call failed"' in html
    assert "margin-left: 50.0%; width: 50.0%" in html  # starts half-way, lasts the rest


def test_trace_search_box_redirects(telemetry: Any, staff_client: Client) -> None:
    assert 'name="id"' in page(staff_client, "/bus/traces/")
    resp = staff_client.get("/bus/traces/", {"id": "  req/42 x "})
    assert resp.status_code == 302 and resp["Location"] == "/bus/traces/req/42%20x"
    assert telemetry.calls == []
    page(staff_client, resp["Location"])
    assert telemetry.calls == [("trace", {"correlation_id": "req/42 x"})]


def test_failures_link_to_their_trace(telemetry: Any, staff_client: Client) -> None:
    assert 'href="/bus/traces/cid-1"' in page(staff_client, "/bus/failures")


def test_events(telemetry: Any, staff_client: Client) -> None:
    html = page(staff_client, "/bus/events")
    assert "inventory.product" in html
    assert 'href="/bus/events/deadletters/inventory.product"' in html
    assert 'id="outbox">Events waiting' in html


def test_redis_down_page_says_so(telemetry: Any, staff_client: Client) -> None:
    telemetry.down = ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
    html = page(staff_client, "/bus/")
    assert 'id="status" class="banner error" role="alert">Redis is unavailable' in html
    resp = staff_client.get("/bus/api/overview")
    assert resp.status_code == 503
    assert resp.json()["error"] == "unavailable"
    telemetry.down = None
    assert "Redis is unavailable" not in page(staff_client, "/bus/")


@pytest.mark.parametrize(
    ("url", "view"),
    [
        ("/bus/api/overview", "overview"),
        ("/bus/api/services/orders", "service"),
        ("/bus/api/traces/cid-1", "trace"),
        ("/bus/api/failures", "failures"),
        ("/bus/api/events", "events"),
    ],
)
def test_api_answers_the_figures(telemetry: Any, staff_client: Client, url: str, view: str):
    resp = staff_client.get(url)
    assert resp["Content-Type"] == "application/json"
    assert resp.json() == SAMPLE[view]


def test_api_is_read_only(telemetry: Any, staff_client: Client) -> None:
    assert staff_client.post("/bus/api/overview").status_code == 405
