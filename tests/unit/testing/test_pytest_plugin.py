"""The pytest plugin shipped with servicebus: on by default (its entry point), with no
conftest, in a separate pytest run of a throwaway test file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.processes import ROOT

TESTS = """
import pytest
from django.db import transaction

import servicebus
from servicebus import ServiceError


def test_a_stub_answers_and_records(stub_service):
    inventory = stub_service(
        "inventory",
        allocate={"status": "allocated"},
        release=ServiceError("allocation_released", "gone"),
        get_product=lambda request: {"sku": request.body["sku"], "flags": sorted(request.flags)},
    )
    assert servicebus.call("inventory.request", "allocate", {"order_id": "o1"}) == {
        "status": "allocated"
    }
    with pytest.raises(servicebus.RemoteError) as caught:
        servicebus.call("inventory.request", "release", {"order_id": "o1"})
    assert caught.value.code == "allocation_released"
    with servicebus.bind("cid-1", flags={"beta"}):
        reply = servicebus.call("inventory.request", "get_product", {"sku": "A1"})
    assert reply == {"sku": "A1", "flags": ["beta"]}
    assert inventory.calls == [
        ("allocate", {"order_id": "o1"}),
        ("release", {"order_id": "o1"}),
        ("get_product", {"sku": "A1"}),
    ]
    assert inventory.requests_to("get_product")[0].correlation_id == "cid-1"
    with pytest.raises(servicebus.MethodNotFound):
        servicebus.call("inventory.request", "finalise", {})


def test_each_test_gets_a_fresh_bus(stub_service):
    stub = stub_service("inventory", allocate={})
    assert stub.calls == []


def test_no_stub_no_answer():
    with pytest.raises(servicebus.CallTimeout):
        servicebus.call("nobody.request", "ping", timeout=0.2)


@pytest.mark.django_db
def test_captured_events_leave_out_rolled_back_ones(captured_events):
    with transaction.atomic():
        servicebus.publish_event("shop.thing", {"n": 1}, key="k1")
    try:
        with transaction.atomic():
            servicebus.publish_event("shop.thing", {"n": 2}, key="k2")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    servicebus.publish_event("shop.other", {"n": 3})
    assert [(e.topic, e.key, e.payload) for e in captured_events] == [
        ("shop.thing", "k1", {"n": 1}),
        ("shop.other", "", {"n": 3}),
    ]
    assert len(captured_events.of("shop.thing")) == 1
"""


def test_the_plugin_fixtures_work_without_a_conftest(tmp_path: Path) -> None:
    (tmp_path / "test_uses_plugin.py").write_text(textwrap.dedent(TESTS))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONPATH": str(ROOT),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout
