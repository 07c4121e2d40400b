"""Settings of durable events, read from ``settings.SERVICEBUS_OUTBOX`` over the defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class OutboxSettings:
    """Effective outbox settings; every field can be overridden in ``SERVICEBUS_OUTBOX``."""

    # Redis that carries the event streams (env SERVICEBUS_REDIS_URL as a fallback).
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    # XADD MAXLEN ~ N: a stream keeps about this many entries.
    STREAM_MAXLEN: int = 100_000
    # Publish right after commit; the relay publishes whatever this misses.
    PUBLISH_ON_COMMIT: bool = True
    RELAY_BATCH_SIZE: int = 500
    RELAY_POLL_INTERVAL: float = 1.0
    # A claim on an outbox row (SQLite fallback) lapses after this many seconds.
    RELAY_CLAIM_TIMEOUT: float = 60.0
    # Published rows are deleted after this many seconds.
    RETENTION_SECONDS: float = 7 * 24 * 3600.0
    CONSUMER_BATCH_SIZE: int = 100
    # A blocking stream read waits at most this long (shutdown latency).
    CONSUMER_BLOCK_SECONDS: float = 1.0
    # An entry pending (unacknowledged) longer than this is delivered again.
    VISIBILITY_TIMEOUT: float = 30.0
    # After this many deliveries without success an entry is dead-lettered.
    MAX_DELIVERIES: int = 5
    # Consumer group when --group is not given (default: SERVICEBUS["SERVICE_NAME"]).
    CONSUMER_GROUP: str = ""


def get_outbox_settings() -> OutboxSettings:
    """Read ``settings.SERVICEBUS_OUTBOX`` (when Django is configured) over the defaults."""
    from django.conf import settings as dj

    overrides: dict[str, Any] = {}
    if dj.configured:
        overrides = dict(getattr(dj, "SERVICEBUS_OUTBOX", {}) or {})
    known = {f.name for f in fields(OutboxSettings)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(
            f"unknown SERVICEBUS_OUTBOX setting(s): {sorted(unknown)}; known: {sorted(known)}"
        )
    if "REDIS_URL" not in overrides and os.environ.get("SERVICEBUS_REDIS_URL"):
        overrides["REDIS_URL"] = os.environ["SERVICEBUS_REDIS_URL"]
    if not overrides.get("CONSUMER_GROUP"):
        from servicebus.conf import get_settings

        overrides["CONSUMER_GROUP"] = get_settings().SERVICE_NAME
    return OutboxSettings(**overrides)
