"""The services' settings: the layer backend, and durable events on the same Redis."""

from __future__ import annotations

import importlib.util

import pytest

from tests.support.processes import ROOT

SERVICES = ("inventory", "pricing", "orders")


def load_settings(service: str):
    path = ROOT / "services" / service / f"{service}_project" / "settings.py"
    spec = importlib.util.spec_from_file_location(f"_{service}_settings", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("service", SERVICES)
def test_layer_backend_defaults_to_servicebus_layers(service: str, monkeypatch) -> None:
    monkeypatch.delenv("SERVICEBUS_LAYER_BACKEND", raising=False)
    backend = load_settings(service).CHANNEL_LAYERS["default"]["BACKEND"]
    assert backend == "servicebus.layers.RedisChannelLayer"


@pytest.mark.parametrize("service", SERVICES)
def test_durable_events_use_the_services_redis(service: str, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://events.local:6380/3")
    monkeypatch.delenv("OUTBOX_PUBLISH_ON_COMMIT", raising=False)
    settings = load_settings(service)
    assert "servicebus.outbox" in settings.INSTALLED_APPS
    assert settings.SERVICEBUS_OUTBOX == {
        "REDIS_URL": "redis://events.local:6380/3",
        "PUBLISH_ON_COMMIT": True,
    }
    assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] == ["redis://events.local:6380/3"]
    monkeypatch.setenv("OUTBOX_PUBLISH_ON_COMMIT", "0")
    assert load_settings(service).SERVICEBUS_OUTBOX["PUBLISH_ON_COMMIT"] is False
