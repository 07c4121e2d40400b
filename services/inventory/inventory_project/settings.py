"""Settings for the inventory service: products and stock, served on ``inventory.request``.

Configured from the environment (twelve-factor): DATABASE_URL, REDIS_URL,
SERVICEBUS_LAYER_BACKEND, CHANNEL_CAPACITY, OUTBOX_PUBLISH_ON_COMMIT, DJANGO_SECRET_KEY,
DJANGO_DEBUG.
"""

import importlib.util
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


# Each service is a project of its own: small helpers like this one are repeated in
# each rather than shared, so that no service imports another's code.
def database_from_url(url: str) -> dict:
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
    raise ValueError(f"unsupported DATABASE_URL scheme {parts.scheme!r}")


def default_layer_backend() -> str:
    """servicebus's Redis layer, or channels_redis's while servicebus.layers is missing."""
    if importlib.util.find_spec("servicebus.layers") is not None:
        return "servicebus.layers.RedisChannelLayer"
    return "channels_redis.core.RedisChannelLayer"


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "inventory-insecure-dev-key")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# servicebus before channels: its runworker (concurrent, draining) replaces channels' one.
INSTALLED_APPS = ["servicebus", "servicebus.outbox", "channels", "inventory"]
ASGI_APPLICATION = "inventory_project.asgi.application"

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'inventory.sqlite3'}")
    )
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": os.environ.get("SERVICEBUS_LAYER_BACKEND") or default_layer_backend(),
        "CONFIG": {
            "hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")],
            # Requests a channel holds before senders get Backpressure (checked at send).
            "capacity": int(os.environ.get("CHANNEL_CAPACITY", "100")),
        },
    }
}
SERVICEBUS = {"SERVICE_NAME": "inventory", "RECEIVE_POLL": 0.5}
# Durable events (replication of inventory's products) on the same Redis: streams and
# channels use different keys. The consumer group is SERVICE_NAME.
SERVICEBUS_OUTBOX = {
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    # 0: events wait in the outbox for servicebus_relay (no publish right after commit).
    "PUBLISH_ON_COMMIT": os.environ.get("OUTBOX_PUBLISH_ON_COMMIT", "1") != "0",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every line carries the correlation ID of the request it was logged for.
    "filters": {"correlation_id": {"()": "servicebus.context.CorrelationIdFilter"}},
    "formatters": {
        "service": {
            "format": "%(asctime)s inventory %(levelname)s [%(correlation_id)s] "
            "%(name)s: %(message)s"
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "service",
            "filters": ["correlation_id"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
