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

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_LAYER_BACKEND = "servicebus.layers.RedisChannelLayer"


# How long a database connection is kept for reuse (seconds): opening one costs far more
# than a query, above all on SQLite, where Django registers its SQL functions each time.
DEFAULT_CONN_MAX_AGE = 60
SQLITE_OPTIONS = {
    # Handler threads write concurrently: take the write lock when a transaction starts
    # (no deadlock on lock upgrade) and wait for it instead of failing.
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    # WAL: readers never block the writer and a commit appends to the log; with
    # synchronous=NORMAL a commit no longer waits for fsync (the log is synced at
    # checkpoints): a power loss may lose the last commits, never corrupt the file.
    "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
}


def database_from_url(
    url: str, *, conn_max_age: int | None = DEFAULT_CONN_MAX_AGE
) -> dict[str, Any]:
    """A DATABASES entry from a URL (dj-database-url: ``sqlite:///path``, ``postgres://...``).

    Connections persist ``conn_max_age`` seconds (None: forever) with health checks;
    SQLite gets SQLITE_OPTIONS. An unknown scheme raises ValueError.
    """
    import dj_database_url

    config: dict[str, Any] = dict(
        dj_database_url.parse(url, conn_max_age=conn_max_age or 0, conn_health_checks=True)
    )
    if conn_max_age is None:
        config["CONN_MAX_AGE"] = None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
    return config


def redis_url(env: Mapping[str, str] = os.environ) -> str:
    """REDIS_URL, or Redis on 127.0.0.1:6379."""
    return env.get("REDIS_URL") or DEFAULT_REDIS_URL


def _key_list(value: str | None) -> list[str]:
    return [key.strip() for key in (value or "").split(",") if key.strip()]


def signing_keys(env: Mapping[str, str] = os.environ) -> list[str]:
    """SERVICEBUS["SIGNING_KEYS"] from SERVICEBUS_SIGNING_KEYS ("current,previous")."""
    return _key_list(env.get("SERVICEBUS_SIGNING_KEYS"))


def channel_layers(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """CHANNEL_LAYERS from REDIS_URL, CHANNEL_CAPACITY, SERVICEBUS_LAYER_BACKEND and
    SERVICEBUS_ENCRYPTION_KEYS (channels_redis symmetric encryption, "current,previous")."""
    config: dict[str, Any] = {
        "hosts": [redis_url(env)],
        # Requests a channel holds before senders get Backpressure (checked at send).
        "capacity": int(env.get("CHANNEL_CAPACITY", "100")),
    }
    encryption_keys = _key_list(env.get("SERVICEBUS_ENCRYPTION_KEYS"))
    if encryption_keys:
        # Bodies are unreadable to anyone with Redis access but not the key.
        config["symmetric_encryption_keys"] = encryption_keys
    return {
        "default": {
            "BACKEND": env.get("SERVICEBUS_LAYER_BACKEND") or DEFAULT_LAYER_BACKEND,
            "CONFIG": config,
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
