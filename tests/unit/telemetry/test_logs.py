"""JSON log lines, the access-log hook and rate-limited drop warnings."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import time
from collections.abc import Iterator

import pytest

from servicebus import bind
from servicebus.environ import logging_config
from servicebus.telemetry.logs import DropLog, JsonFormatter, access_log
from tests.unit.telemetry.helpers import Info


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Route servicebus.* loggers through the JSON config into a buffer."""
    config = logging_config("inventory", {"LOG_LEVEL": "INFO"}, json=True)
    config["handlers"]["console"]["stream"] = stream = io.StringIO()
    config["root"] = {"handlers": [], "level": "WARNING"}
    config["loggers"] = {"servicebus": {"handlers": ["console"], "level": "INFO"}}
    logging.config.dictConfig(config)
    yield stream
    logging.getLogger("servicebus").handlers.clear()
    logging.getLogger("servicebus").setLevel(logging.NOTSET)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_access_line_is_one_json_object_with_the_fields(json_lines: io.StringIO) -> None:
    access_log.server_end(Info(duration=0.0123, code="out_of_stock", correlation_id="abc"))
    [line] = lines(json_lines)
    assert line["logger"] == "servicebus.access" and line["level"] == "INFO"
    assert line["correlation_id"] == "abc"
    assert line["service"] == "inventory" and line["method"] == "allocate"
    assert line["caller"] == "orders" and line["code"] == "out_of_stock"
    assert line["duration_ms"] == 12.3
    # The correlation ID is a field, not repeated in the message text.
    assert "abc" not in str(line["message"])


def test_plain_lines_carry_the_bound_correlation_id(json_lines: io.StringIO) -> None:
    with bind("edge-7"):
        logging.getLogger("servicebus.client").warning("something %s", "odd")
    [line] = lines(json_lines)
    assert line["correlation_id"] == "edge-7" and line["message"] == "something odd"
    assert line["service"] == "inventory"


def test_exceptions_are_a_field() -> None:
    formatter = JsonFormatter("svc")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, "f", 1, "failed", None, sys.exc_info())
    line = json.loads(formatter.format(record))
    assert "ValueError: boom" in line["exc"] and "\n" not in formatter.format(record)


def test_text_format_is_unchanged_without_json() -> None:
    config = logging_config("orders", {})
    assert "[%(correlation_id)s]" in config["formatters"]["service"]["format"]
    json_config = logging_config("orders", {"LOG_FORMAT": "json"})
    assert json_config["formatters"]["service"]["()"].endswith("JsonFormatter")


def test_drop_warnings_are_rate_limited_and_flushed(caplog: pytest.LogCaptureFixture) -> None:
    drops = DropLog(interval=60)
    with caplog.at_level(logging.WARNING, logger="servicebus.drops"):
        drops.dropped("group_member_full", "layer", 3)
        for _ in range(100):
            drops.dropped("group_member_full", "layer", 2)
        drops.dropped("expired", "worker", 1)
        assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
            "dropped 3 message(s) in layer: group_member_full",
            "dropped 1 message(s) in worker: expired",
        ]
        drops.flush()
        assert (
            caplog.records[-1]
            .getMessage()
            .startswith("dropped 200 message(s) in layer: group_member_full")
        )
        drops.flush()  # nothing pending: nothing logged
        assert len(caplog.records) == 3


def test_access_log_costs_nothing_when_info_is_off() -> None:
    logging.getLogger("servicebus.access").setLevel(logging.WARNING)
    try:
        start = time.perf_counter()
        for _ in range(10_000):
            access_log.server_end(Info())
        assert time.perf_counter() - start < 0.5
    finally:
        logging.getLogger("servicebus.access").setLevel(logging.NOTSET)
