"""Settings of durable events, read from ``settings.SERVICEBUS_OUTBOX`` over the defaults."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from servicebus.conf import check, env_only, get_settings, load_settings, non_negative, positive

_POSITIVE = check(positive, "> 0")


@dataclass(frozen=True)
class OutboxSettings:
    """Effective outbox settings; every field can be overridden in ``SERVICEBUS_OUTBOX``."""

    # Redis that carries the event streams (env SERVICEBUS_REDIS_URL as a fallback).
    REDIS_URL: str = field(
        default="redis://127.0.0.1:6379/0", metadata=env_only("SERVICEBUS_REDIS_URL")
    )
    # XADD MAXLEN ~ N: a stream keeps about this many entries.
    STREAM_MAXLEN: int = field(default=100_000, metadata=_POSITIVE)
    # Publish right after commit; the relay publishes whatever this misses.
    PUBLISH_ON_COMMIT: bool = True
    # Outbox rows one relay pass takes (one XADD pipeline, two UPDATEs).
    RELAY_BATCH_SIZE: int = field(default=500, metadata=_POSITIVE)
    # Seconds an idle relay waits before looking for unpublished rows again.
    RELAY_POLL_INTERVAL: float = field(default=1.0, metadata=_POSITIVE)
    # A claim on an outbox row (SQLite fallback) lapses after this many seconds.
    RELAY_CLAIM_TIMEOUT: float = field(default=60.0, metadata=_POSITIVE)
    # Published rows are deleted after this many seconds.
    RETENTION_SECONDS: float = field(default=7 * 24 * 3600.0, metadata=check(non_negative, ">= 0"))
    # Stream entries one consumer read takes (handled in one database transaction).
    CONSUMER_BATCH_SIZE: int = field(default=100, metadata=_POSITIVE)
    # A blocking stream read waits at most this long (shutdown latency).
    CONSUMER_BLOCK_SECONDS: float = field(default=1.0, metadata=_POSITIVE)
    # An entry pending (unacknowledged) longer than this is delivered again.
    VISIBILITY_TIMEOUT: float = field(default=30.0, metadata=_POSITIVE)
    # After this many failed deliveries an entry is dead-lettered (see docs/events.md).
    MAX_DELIVERIES: int = field(default=5, metadata=_POSITIVE)
    # Consumer group when --group is not given (default: SERVICEBUS["SERVICE_NAME"]).
    CONSUMER_GROUP: str = ""


def get_outbox_settings() -> OutboxSettings:
    """``settings.SERVICEBUS_OUTBOX`` over the defaults; SettingsError lists what is wrong.

    Not cached: tests and management commands change the settings between calls.
    """
    loaded = load_settings(OutboxSettings, "SERVICEBUS_OUTBOX")
    if not loaded.CONSUMER_GROUP:
        loaded = replace(loaded, CONSUMER_GROUP=get_settings().SERVICE_NAME)
    return loaded
