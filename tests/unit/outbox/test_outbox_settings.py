"""Outbox settings: defaults, overrides, and a helpful error for unknown names."""

from __future__ import annotations

import pytest

from servicebus.conf import SettingsError, settings_problems
from servicebus.outbox.settings import OutboxSettings, get_outbox_settings


def test_defaults_and_group_from_service_name(settings, monkeypatch):
    monkeypatch.delenv("SERVICEBUS_REDIS_URL", raising=False)
    settings.SERVICEBUS_OUTBOX = {}
    got = get_outbox_settings()
    assert got.MAX_DELIVERIES == OutboxSettings.MAX_DELIVERIES == 5
    assert got.CONSUMER_GROUP == "tests"  # SERVICEBUS["SERVICE_NAME"] in tests/settings.py
    assert got.REDIS_URL == "redis://127.0.0.1:6379/0"


def test_overrides_and_env_fallback(settings, monkeypatch):
    monkeypatch.setenv("SERVICEBUS_REDIS_URL", "redis://env:1/0")
    settings.SERVICEBUS_OUTBOX = {"STREAM_MAXLEN": 10, "CONSUMER_GROUP": "g"}
    got = get_outbox_settings()
    assert (got.STREAM_MAXLEN, got.CONSUMER_GROUP, got.REDIS_URL) == (10, "g", "redis://env:1/0")
    settings.SERVICEBUS_OUTBOX = {"REDIS_URL": "redis://explicit:2/0"}
    assert get_outbox_settings().REDIS_URL == "redis://explicit:2/0"


def test_unknown_setting_names_the_known_ones(settings):
    settings.SERVICEBUS_OUTBOX = {"MAX_DELIVERY": 3}
    with pytest.raises(ValueError, match="MAX_DELIVERIES"):
        get_outbox_settings()


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"MAX_DELIVERIES": "3"}, "MAX_DELIVERIES"),
        ({"MAX_DELIVERIES": 0}, "MAX_DELIVERIES"),
        ({"VISIBILITY_TIMEOUT": float("nan")}, "VISIBILITY_TIMEOUT"),
        ({"PUBLISH_ON_COMMIT": 1}, "PUBLISH_ON_COMMIT"),
        ({"RELAY_BATCH_SIZE": True}, "RELAY_BATCH_SIZE"),
    ],
)
def test_wrong_types_and_values_are_refused_by_the_one_loader(settings, raw, named):
    settings.SERVICEBUS_OUTBOX = raw
    with pytest.raises(SettingsError, match=named):
        get_outbox_settings()
    assert settings_problems(OutboxSettings, "SERVICEBUS_OUTBOX", raw)  # for system checks


def test_int_accepted_where_seconds_are_a_float(settings):
    settings.SERVICEBUS_OUTBOX = {"VISIBILITY_TIMEOUT": 2}
    assert get_outbox_settings().VISIBILITY_TIMEOUT == 2.0
