"""servicebus_call and servicebus_status on the in-memory bus (no Redis)."""

from __future__ import annotations

import io
import json
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from servicebus import Request, Service, ServiceError
from servicebus.management.commands.servicebus_call import channel_of
from servicebus.management.commands.servicebus_status import render
from servicebus.testing import serve_in_background
from tests.support.redis_server import free_port

inventory = Service("clitest")


@inventory.method()
def echo(request: Request) -> dict[str, object]:
    return {"body": request.body, "headers": dict(request.headers), "flags": sorted(request.flags),
            "cid": request.correlation_id}  # fmt: skip


@inventory.method()
def refuse(request: Request) -> None:
    raise ServiceError("out_of_stock", "no stock for A1")


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        call_command("servicebus_call", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def test_channel_of() -> None:
    assert channel_of("inventory") == "inventory.request"
    assert channel_of("inventory.request") == "inventory.request"


def test_call_prints_the_reply_as_json() -> None:
    with serve_in_background(inventory):
        code, out, err = run(
            "clitest", "echo", '{"sku": "A1"}', "--header", "x-tenant=acme", "--flag", "beta",
            "--correlation-id", "cli-1",
        )  # fmt: skip
        assert code == 0, err
        reply = json.loads(out)
        assert reply == {"body": {"sku": "A1"}, "headers": {"x-tenant": "acme"},
                         "flags": ["beta"], "cid": "cli-1"}  # fmt: skip
        code, out, _ = run("clitest.request", "echo", "-", stdin="[1, 2]")
        assert code == 0 and json.loads(out)["body"] == [1, 2]


def test_bus_error_goes_to_stderr_with_exit_1() -> None:
    with serve_in_background(inventory):
        code, out, err = run("clitest", "refuse")
        assert code == 1 and out == ""
        assert err.splitlines()[0] == "out_of_stock: no stock for A1"
        code, _, err = run("clitest", "nope")
        assert code == 1 and err.startswith("method_not_found: ")


def test_timeout_prints_code_and_hint() -> None:
    code, _, err = run("nobody", "ping", "--timeout", "0.2")
    assert code == 1
    first, second = err.splitlines()[:2]
    assert first.startswith("timeout: ") and second.startswith("hint: ")


def test_bad_json_and_bad_header_are_usage_errors() -> None:
    with pytest.raises(CommandError, match="not JSON"):
        call_command("servicebus_call", "clitest", "echo", "{nope")
    with pytest.raises(CommandError, match="NAME=VALUE"):
        call_command("servicebus_call", "clitest", "echo", "--header", "novalue")


def test_status_on_the_in_memory_layer_says_there_is_no_registry() -> None:
    out = io.StringIO()
    # The events' Redis: a closed port (never the machine's 6379).
    nowhere = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with override_settings(SERVICEBUS_OUTBOX=nowhere):
        call_command("servicebus_status", "--json", stdout=out)
    status = json.loads(out.getvalue())
    assert status["services"] == [] and "not Redis" in status["error"]
    assert "unavailable" in status["events_error"]
    assert set(status) >= {"services", "streams", "outbox", "dead_letters"}


def test_render_shows_services_instances_and_events() -> None:
    status = {
        "time": 0,
        "services": [
            {"name": "inventory", "in_flight": 3, "concurrency": 64, "backlog": 5, "capacity": 100,
             "calls_per_s": 120.5, "errors_per_s": 0.5, "p50_ms": 1.2, "p99_ms": 8.0,
             "instances": [{"instance": "h:1:ab", "pid": 1, "uptime": 3700, "in_flight": 3,
                            "concurrency": 64, "age": 2.0, "stale": False}]},
        ],
        "streams": [{"topic": "inventory.product", "length": 9,
                     "groups": [{"name": "orders", "lag": 0, "pending": 1}]}],
        "outbox": {"pending": 2, "oldest_age": 1.0},
        "dead_letters": [{"topic": "inventory.product", "count": 1}],
    }  # fmt: skip
    text = render(status)
    assert "inventory  1          3/64       5/100    120.50   0.50      1.2ms  8.0ms" in text
    assert "h:1:ab  pid 1  up 1h01m  in-flight 3/64  last beat 2s ago" in text
    assert "inventory.product  length 9  orders: lag 0, pending 1" in text
    assert "OUTBOX  2 pending" in text and "DEAD LETTERS  inventory.product: 1" in text
