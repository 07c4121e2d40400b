"""The services' settings: DATABASE_URL parsing (each service carries its own copy)."""

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
def test_database_from_url(service: str) -> None:
    parse = load_settings(service).database_from_url
    sqlite = parse("sqlite:////tmp/x/inventory.sqlite3")
    assert sqlite["ENGINE"] == "django.db.backends.sqlite3"
    assert sqlite["NAME"] == "/tmp/x/inventory.sqlite3"
    assert sqlite["OPTIONS"] == {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    assert parse("sqlite:///relative.db")["NAME"] == "relative.db"
    pg = parse("postgres://shop:p%40ss@db.local:6543/inventory")
    assert pg == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "inventory",
        "USER": "shop",
        "PASSWORD": "p@ss",
        "HOST": "db.local",
        "PORT": "6543",
    }
    assert parse("postgresql://localhost/x")["PORT"] == ""
    with pytest.raises(ValueError, match="mysql"):
        parse("mysql://localhost/x")


@pytest.mark.parametrize("service", SERVICES)
def test_layer_backend_defaults_to_servicebus_layers(service: str, monkeypatch) -> None:
    monkeypatch.delenv("SERVICEBUS_LAYER_BACKEND", raising=False)
    backend = load_settings(service).CHANNEL_LAYERS["default"]["BACKEND"]
    assert backend == "servicebus.layers.RedisChannelLayer"
