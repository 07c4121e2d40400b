"""SERVICEBUS settings: defaults, overrides, and a clear error for a mistyped key."""

from __future__ import annotations

import pytest

from servicebus.conf import get_settings, request_channel


def test_defaults_and_overrides(settings) -> None:
    settings.SERVICEBUS = {"SERVICE_NAME": "orders", "DEFAULT_TIMEOUT": 2.5}
    effective = get_settings()
    assert (effective.SERVICE_NAME, effective.DEFAULT_TIMEOUT) == ("orders", 2.5)
    assert effective.WORKER_BATCH == 16 and effective.MAX_BODY_SIZE == 8 * 1024 * 1024
    assert request_channel("orders") == "orders.request"


def test_unknown_key_is_refused_with_the_known_ones(settings) -> None:
    settings.SERVICEBUS = {"SERVICE_NAME": "orders", "DEFAULT_TIMOUT": 2.5}
    with pytest.raises(ValueError, match="DEFAULT_TIMOUT") as info:
        get_settings()
    assert "DEFAULT_TIMEOUT" in str(info.value)
