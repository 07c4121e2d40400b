"""Redis key names and wire field names for durable events, in one place."""

from __future__ import annotations

# Stream of one topic: ``servicebus:events:<topic>``.
EVENT_STREAM_PREFIX = "servicebus:events:"
# Dead letters of one topic: ``servicebus:deadletter:<topic>``.
DEADLETTER_STREAM_PREFIX = "servicebus:deadletter:"
# Set when an entry past MAX_DELIVERIES starts its one last run:
# ``servicebus:lastchance:<group>:<topic>:<stream id>`` (expires on its own).
LAST_CHANCE_PREFIX = "servicebus:lastchance:"

# Version of the stream entry layout; consumers dead-letter entries of unknown versions.
ENTRY_VERSION = "1"

# Built-in topic on which a replica asks the source to republish keys (servicebus_diff).
RESYNC_TOPIC = "servicebus.resync"

# Header naming the one consumer group an event is meant for (targeted re-sync).
TARGET_GROUP_HEADER = "target_group"
CORRELATION_HEADER = "correlation_id"


def event_stream(topic: str) -> str:
    """The Redis stream that carries one topic."""
    return f"{EVENT_STREAM_PREFIX}{topic}"


def deadletter_stream(topic: str) -> str:
    """The Redis stream that keeps one topic's dead letters."""
    return f"{DEADLETTER_STREAM_PREFIX}{topic}"


def last_chance_key(topic: str, group: str, stream_id: str) -> str:
    """The marker of an entry's last run in one consumer group."""
    return f"{LAST_CHANCE_PREFIX}{group}:{topic}:{stream_id}"
