"""Settings, defaults and names in one place.

Every value can be overridden in Django settings through the ``SERVICEBUS`` dict, e.g.
``SERVICEBUS = {"SERVICE_NAME": "orders", "DEFAULT_TIMEOUT": 2.0}``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, fields
from typing import Any

# Wire contract: bump only with a documented migration (docs/protocol.md).
PROTOCOL_VERSION = 1
REQUEST_TYPE = "servicebus.request"
REPLY_TYPE = "servicebus.reply"

# Channel names.
REQUEST_CHANNEL_SUFFIX = ".request"
REQUEST_CHANNEL_TEMPLATE = "{service}" + REQUEST_CHANNEL_SUFFIX
REPLY_CHANNEL_PREFIX = "servicebus.reply"

# The longest timeout a call may ask for (seconds): beyond it is a mistake, not a wait.
MAX_TIMEOUT = 86400.0


@dataclass(frozen=True)
class Settings:
    """Effective servicebus settings (defaults overridden by ``settings.SERVICEBUS``)."""

    SERVICE_NAME: str = ""
    CHANNEL_LAYER: str = "default"
    DEFAULT_TIMEOUT: float = 5.0
    MAX_BODY_SIZE: int = 8 * 1024 * 1024
    WORKER_CONCURRENCY: int = 64
    # Most messages one receive takes: smaller batches let caller, worker and Redis work
    # on different batches at once instead of passing one burst around (PERFORMANCE-NOTES).
    WORKER_BATCH: int = 16
    DRAIN_TIMEOUT: float = 30.0
    # Caps how long a blocking receive waits before it polls again (shutdown latency).
    RECEIVE_POLL: float = 1.0


@functools.cache
def get_settings() -> Settings:
    """Read ``settings.SERVICEBUS`` (when Django is configured) over the defaults; cached."""
    overrides: dict[str, Any] = {}
    try:
        from django.conf import settings as dj

        if dj.configured:
            overrides = dict(getattr(dj, "SERVICEBUS", {}) or {})
    except ImportError:  # pragma: no cover - django is a dependency
        pass
    known = {f.name for f in fields(Settings)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(
            f"unknown SERVICEBUS setting(s): {sorted(unknown)}; known: {sorted(known)}"
        )
    if not overrides.get("SERVICE_NAME"):
        overrides["SERVICE_NAME"] = os.environ.get("SERVICEBUS_SERVICE_NAME", "")
    return Settings(**overrides)


def request_channel(service: str) -> str:
    """The channel a service listens on by default."""
    return REQUEST_CHANNEL_TEMPLATE.format(service=service)


def service_of(channel: str) -> str:
    """The service name of a request channel (the channel itself when not a default name)."""
    return channel.removesuffix(REQUEST_CHANNEL_SUFFIX) or channel


def _reset_on_setting_changed(**kwargs: Any) -> None:
    # override_settings in tests must take effect at once.
    if kwargs.get("setting") == "SERVICEBUS":
        get_settings.cache_clear()


try:
    from django.core.signals import setting_changed

    setting_changed.connect(_reset_on_setting_changed)
except ImportError:  # pragma: no cover
    pass
