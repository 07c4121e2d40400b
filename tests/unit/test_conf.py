"""SERVICEBUS settings: defaults, overrides, and clear errors for mistyped keys and values."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from django.core.exceptions import ImproperlyConfigured

from servicebus import hooks
from servicebus.conf import (
    Settings,
    SettingsError,
    check,
    env_only,
    get_settings,
    load_settings,
    positive,
    request_channel,
    settings_problems,
)


def test_defaults_and_overrides(settings) -> None:
    settings.SERVICEBUS = {"SERVICE_NAME": "orders", "DEFAULT_TIMEOUT": 2}
    effective = get_settings()
    assert (effective.SERVICE_NAME, effective.DEFAULT_TIMEOUT) == ("orders", 2.0)
    assert isinstance(effective.DEFAULT_TIMEOUT, float)
    assert effective.WORKER_BATCH == 32 and effective.MAX_BODY_SIZE == 8 * 1024 * 1024
    assert request_channel("orders") == "orders.request"


def test_unknown_key_is_refused_with_the_known_ones(settings) -> None:
    settings.SERVICEBUS = {"SERVICE_NAME": "orders", "DEFAULT_TIMOUT": 2.5}
    with pytest.raises(ValueError, match="DEFAULT_TIMOUT") as info:
        get_settings()
    assert "DEFAULT_TIMEOUT" in str(info.value)
    assert isinstance(info.value, ImproperlyConfigured)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"DEFAULT_TIMEOUT": "5"}, "must be float, got str"),
        ({"DEFAULT_TIMEOUT": float("nan")}, "finite"),
        ({"DEFAULT_TIMEOUT": 0}, "finite"),
        ({"DEFAULT_TIMEOUT": 1e9}, "86400"),
        ({"WORKER_CONCURRENCY": True}, "must be int, got bool"),
        ({"WORKER_CONCURRENCY": 0}, ">= 1"),
        ({"MAX_BODY_SIZE": 1.5}, "must be int"),
        ({"DRAIN_TIMEOUT": -1}, ">= 0"),
        ({"HOOKS": "a.b"}, "a list of str"),
        ({"HOOKS": ["a.b", 3]}, "a list of str"),
        ({"SERVICE_NAME": None}, "must be str"),
    ],
)
def test_wrong_types_and_values_are_refused(settings, raw, says) -> None:
    assert any(says in p for p in settings_problems(Settings, "SERVICEBUS", raw))
    settings.SERVICEBUS = raw
    with pytest.raises(SettingsError, match=f"SERVICEBUS\\['{next(iter(raw))}'\\]"):
        get_settings()


def test_not_a_dict() -> None:
    assert settings_problems(Settings, "SERVICEBUS", ["x"]) == [  # type: ignore[arg-type]
        "SERVICEBUS must be a dict, got list"
    ]


@dataclass(frozen=True)
class Other:
    URL: str = field(default="redis://x", metadata=env_only("OTHER_URL"))
    BATCH: int = field(default=10, metadata=check(positive, "> 0"))
    GROUP: str = ""


def test_the_loader_serves_other_settings_dicts(settings) -> None:
    settings.OTHER = {"BATCH": 5}
    loaded = load_settings(Other, "OTHER", env={"OTHER_URL": "redis://env"}, GROUP="g")
    assert loaded == Other(URL="redis://env", BATCH=5, GROUP="g")
    settings.OTHER = {"BATCH": 0, "NOPE": 1}
    with pytest.raises(SettingsError) as info:
        load_settings(Other, "OTHER")
    assert "OTHER['BATCH'] must be > 0" in str(info.value) and "NOPE" in str(info.value)


class RecordingHook:
    """A hook class named in settings (instantiated without arguments)."""

    def client_start(self, info: hooks.CallInfo) -> None:
        pass


def test_hooks_are_installed_from_settings(settings) -> None:
    settings.SERVICEBUS = {"HOOKS": ["tests.unit.test_conf.RecordingHook"]}
    get_settings()
    assert [type(h) for h in hooks.installed()] == [RecordingHook]
    settings.SERVICEBUS = {}
    get_settings()
    assert hooks.installed() == []
