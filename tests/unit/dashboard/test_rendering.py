"""Template filters, assets and the data seam: sparklines, formats, errors mapped once."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis.exceptions
from django.test import Client

from servicebus.dashboard import data
from servicebus.dashboard.render import lenient
from servicebus.dashboard.templatetags import dashboard as tags
from servicebus.errors import BusUnavailable


def test_sparkline_is_inline_svg_scaled_to_its_box() -> None:
    svg = str(tags.sparkline([0, 5, 10], "100x20"))
    assert svg.startswith('<svg class="spark" width="100%" height="20" viewBox="0 0 100 20"')
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert points == ["0.0,19.0", "50.0,10.0", "100.0,1.0"]  # lowest at the bottom


@pytest.mark.parametrize("series", [[], None, "abc", [float("nan")], [[1, 2]], {"a": 1}])
def test_sparkline_of_odd_series_still_draws(series: Any) -> None:
    assert "<polyline" in str(tags.sparkline(series))


def test_sparkline_takes_timestamp_value_pairs() -> None:
    svg = str(tags.sparkline([[100, 1], [110, 3]], "10x10"))
    assert 'points="0.0,9.0 10.0,1.0"' in svg


def test_series_of_a_history() -> None:
    history = [[0.0, 30, 3, 1.0, None], [15.0, 15, 0, 2.0, 8.0], "junk", [30.0]]
    history.append([30.0, 1, 1, 4.0, 9.0])  # the slot still filling
    assert tags.series(history, "calls_per_s") == [2.0, 1.0]
    assert tags.series(history, "errors_per_s") == [0.2, 0.0]
    assert tags.series(history, "p99_ms") == [0.0, 8.0, 9.0]
    assert tags.series(None, "p50_ms") == []


def test_formats() -> None:
    assert tags.percent(5, 100) == 5
    assert tags.percent(500, 100) == 100
    assert tags.percent(1, 0) == 0
    assert tags.percent(None, 10) == 0
    assert tags.share(1, 3) == "33.3"
    assert tags.at_least("0.0", 0.5) == "0.5"
    assert tags.rate(0) == "0"
    assert tags.rate(1234) == "1.2k"
    assert tags.rate(None) == tags.NO_FIGURE
    assert tags.ms(0.42) == "0.42 ms"
    assert tags.ms(12.3) == "12 ms"
    assert tags.ms(1500) == "1.50 s"
    assert tags.seconds_ms(0.25) == "250 ms"
    assert tags.duration(3725) == "1h 2m"
    assert tags.duration(42) == "42s"
    assert tags.clock(0) == "00:00:00.000"
    assert tags.clock("x") == tags.NO_FIGURE


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("value", "total", "percent", "share"),
    [
        (1, 3, 33, "33.3"),
        (500, 100, 100, "100.0"),  # clamped
        (-5, 10, 0, "0.0"),
        (1, 0, 0, "0"),  # unknown: no capacity
        (1, INF, 0, "0.0"),
        (INF, 1, 0, "0"),
        (NAN, 1, 0, "0"),
        ("x", 1, 0, "0"),
    ],
)
def test_shares_of_a_total(value: Any, total: Any, percent: int, share: str) -> None:
    assert tags.percent(value, total) == percent
    assert tags.share(value, total) == share


@pytest.mark.parametrize("value", [None, "x", NAN, INF, -INF, [1]])
def test_what_is_not_a_finite_number_shows_no_figure(value: Any) -> None:
    assert tags.rate(value) == tags.NO_FIGURE
    assert tags.ms(value) == tags.NO_FIGURE


def test_a_sparkline_skips_points_that_are_not_finite_numbers() -> None:
    assert "last 2 points" in str(tags.sparkline([1, NAN, None, "x", [0, INF], [0, 3]]))


def test_lenient_figures_read_missing_fields_as_none() -> None:
    figures = lenient({"a": [{"b": 1}], "codes": {"ok": 1}})
    assert figures["a"][0]["missing"] is None
    assert list(figures["codes"].items()) == [("ok", 1)]
    with pytest.raises(KeyError):
        figures["items"]  # a template's .items means the method


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("refused"),
        redis.exceptions.ConnectionError("refused"),
        redis.exceptions.TimeoutError("slow"),
        BusUnavailable("down"),
        OSError("no route"),
    ],
)
def test_redis_errors_become_unavailable(telemetry: Any, error: Exception) -> None:
    telemetry.down = error
    with pytest.raises(data.Unavailable):
        data.read("overview")


def test_other_errors_are_not_hidden(telemetry: Any) -> None:
    telemetry.down = KeyError("bug")
    with pytest.raises(KeyError):
        data.read("overview")


def test_unknown_view(telemetry: Any) -> None:
    with pytest.raises(ValueError):
        data.read("secrets")


def test_reads_are_shared_within_the_cache_window(telemetry: Any, monkeypatch) -> None:
    monkeypatch.setattr(data, "CACHE_SECONDS", 60.0)
    for _ in range(3):
        data.read("service", name="orders")
    data.read("trace", correlation_id="a")
    data.read("trace", correlation_id="b")
    assert [view for view, _ in telemetry.calls] == ["service", "trace", "trace"]


@pytest.mark.django_db
def test_assets_ship_with_the_package() -> None:
    client = Client()  # the login page needs them too: no login required
    js = client.get("/bus/assets/dashboard.js")
    assert js.status_code == 200 and js["Content-Type"] == "text/javascript"
    assert b"new WebSocket" in js.content
    css = client.get("/bus/assets/dashboard.css")
    assert css["Content-Type"] == "text/css"
    assert client.get("/bus/assets/settings.py").status_code == 404
    assert client.get("/bus/assets/..%2F..%2Fviews.py").status_code == 404


@pytest.mark.django_db
def test_pages_load_nothing_from_elsewhere(telemetry: Any, staff_client: Client) -> None:
    for url in ["/bus/", "/bus/services/orders", "/bus/traces/cid-1", "/bus/events"]:
        html = staff_client.get(url).content.decode()
        refs = re.findall(r'(?:src|href|action)="([^"]*)"', html)
        assert refs and all(ref.startswith(("/bus/", "#")) for ref in refs), refs
        assert "http://" not in html and "https://" not in html
