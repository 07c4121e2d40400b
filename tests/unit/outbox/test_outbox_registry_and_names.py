"""Subscriber registry, key names, the public names of servicebus.outbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import servicebus.outbox as outbox
from servicebus.outbox import registry
from servicebus.outbox.constants import deadletter_stream, event_stream
from servicebus.outbox.transport import original_fields

ROOT = Path(__file__).resolve().parents[3]


def test_subscriber_registers_once_and_unregisters():
    seen: list[outbox.Event] = []

    def handler(event):
        seen.append(event)

    assert outbox.subscriber("unit.topic")(handler) is handler
    outbox.subscriber("unit.topic")(handler)
    event = outbox.Event(id="e1", topic="unit.topic", key="k", payload={})
    try:
        registry.run_handlers("unit.topic", [event])
        assert seen == [event]  # registered twice, runs once
        assert "unit.topic" in registry.topics()
    finally:
        registry.unregister("unit.topic", handler)
    assert "unit.topic" not in registry.topics()
    registry.run_handlers("unit.topic", [event])
    assert seen == [event]


def test_key_names_live_in_one_place():
    assert event_stream("inventory.product") == "servicebus:events:inventory.product"
    assert deadletter_stream("inventory.product") == "servicebus:deadletter:inventory.product"


def test_dead_letter_records_keep_the_original_fields():
    record = {"orig.id": "e1", "orig.payload": "{}", "error": "boom", "group": "g"}
    assert original_fields(record) == {"id": "e1", "payload": "{}"}


def test_public_names_are_sorted_and_importable():
    assert outbox.__all__ == sorted(outbox.__all__)
    for name in outbox.__all__:
        assert getattr(outbox, name) is not None
    assert outbox.SourceModel.__name__ == "SourceModel"  # lazily loaded model mixins


def test_package_root_imports_before_the_app_registry():
    # Handlers modules and settings-time code import these names before django.setup().
    code = (
        "import sys\n"
        "from servicebus.outbox import Event, publish_event, subscriber\n"
        "assert 'servicebus.outbox.models' not in sys.modules, 'models imported too early'\n"
        "from django.apps import apps\n"
        "assert not apps.ready\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
