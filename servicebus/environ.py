"""Settings from the environment (twelve-factor), for a service's settings.py.

from servicebus import environ
DATABASES = {"default": environ.database_from_url(os.environ.get("DATABASE_URL", ...))}
CHANNEL_LAYERS = environ.channel_layers()
LOGGING = environ.logging_config("orders")
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_LAYER_BACKEND = "servicebus.layers.RedisChannelLayer"


def database_from_url(url: str) -> dict[str, Any]:
    """A DATABASES entry from ``sqlite:///path`` or ``postgres://user:pass@host:port/name``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as in dj-database-url.
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path[1:]) or ":memory:",
            # Handler threads write concurrently: take the write lock when a transaction
            # starts (no deadlock on lock upgrade) and wait for it instead of failing.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    raise ValueError(
        f"unsupported DATABASE_URL scheme {parts.scheme!r}: use sqlite:///path or "
        "postgres://user:password@host:port/name"
    )


def redis_url(env: Mapping[str, str] = os.environ) -> str:
    """REDIS_URL, or Redis on 127.0.0.1:6379."""
    return env.get("REDIS_URL") or DEFAULT_REDIS_URL


def channel_layers(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """CHANNEL_LAYERS from REDIS_URL, CHANNEL_CAPACITY and SERVICEBUS_LAYER_BACKEND."""
    return {
        "default": {
            "BACKEND": env.get("SERVICEBUS_LAYER_BACKEND") or DEFAULT_LAYER_BACKEND,
            "CONFIG": {
                "hosts": [redis_url(env)],
                # Requests a channel holds before senders get Backpressure (checked at send).
                "capacity": int(env.get("CHANNEL_CAPACITY", "100")),
            },
        }
    }


def logging_config(
    service: str, env: Mapping[str, str] = os.environ, *, json: bool | None = None
) -> dict[str, Any]:
    """LOGGING that prints the correlation ID on every line (LOG_LEVEL, default INFO).

    ``json=True`` (default: env LOG_FORMAT=json): one JSON object per line with
    correlation_id, service, method, caller, duration_ms and code as fields
    (servicebus.telemetry.logs.JsonFormatter).
    """
    if json is None:
        json = env.get("LOG_FORMAT", "text").lower() == "json"
    formatter: dict[str, Any] = {
        "format": f"%(asctime)s {service} %(levelname)s [%(correlation_id)s] %(name)s: %(message)s"
    }
    if json:
        formatter = {"()": "servicebus.telemetry.logs.JsonFormatter", "service": service}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"correlation_id": {"()": "servicebus.context.CorrelationIdFilter"}},
        "formatters": {"service": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "service",
                "filters": ["correlation_id"],
            }
        },
        "root": {"handlers": ["console"], "level": env.get("LOG_LEVEL", "INFO")},
    }
