"""Redis Streams transport: publish entries, consumer groups, dead letters."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import redis

from servicebus.outbox.constants import (
    DEADLETTER_STREAM_PREFIX,
    deadletter_stream,
    event_stream,
)
from servicebus.outbox.settings import OutboxSettings, get_outbox_settings


def connect(settings: OutboxSettings | None = None, *, raw: bool = False) -> redis.Redis:
    """A Redis client for the event streams: text replies, or bytes when ``raw``.

    Consumers read raw bytes so an entry that is not UTF-8 is dead-lettered rather
    than breaking the read of every entry around it.
    """
    settings = settings or get_outbox_settings()
    # Bounded waits: an unreachable Redis must not hang a request's on-commit publish;
    # reads may block for CONSUMER_BLOCK_SECONDS, so the socket waits longer than that.
    timeouts = {
        "socket_connect_timeout": 5.0,
        "socket_timeout": settings.CONSUMER_BLOCK_SECONDS + 10.0,
    }
    if raw:
        return redis.Redis.from_url(settings.REDIS_URL, **timeouts)
    return redis.Redis.from_url(
        settings.REDIS_URL, decode_responses=True, encoding_errors="replace", **timeouts
    )


def text(value: str | bytes) -> str:
    """A reply value as text (bytes decoded leniently, for names and ids)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def xadd_many(
    client: redis.Redis, entries: list[tuple[str, dict[str, str]]], maxlen: int
) -> list[str | Exception]:
    """XADD each (topic, fields) in one round trip; a stream id or the error, per entry."""
    pipe = client.pipeline(transaction=False)
    for topic, fields in entries:
        pipe.xadd(event_stream(topic), fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
    results: list[Any] = pipe.execute(raise_on_error=False)
    return [r if isinstance(r, Exception) else str(r) for r in results]


def ensure_group(client: redis.Redis, topic: str, group: str) -> None:
    """Create the consumer group (from the start of the stream) unless it exists."""
    try:
        client.xgroup_create(event_stream(topic), group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def deliveries(client: redis.Redis, topic: str, group: str, stream_id: str) -> int:
    """How many times the group has delivered this entry (0 when no longer pending)."""
    rows = client.xpending_range(event_stream(topic), group, stream_id, stream_id, 1)
    return int(rows[0]["times_delivered"]) if rows else 0


def dead_letter(
    client: redis.Redis, topic: str, group: str, stream_id: str, fields: Any, error: str
) -> str:
    """Copy an entry with the error text to the topic's dead-letter stream, then XACK it."""
    record: dict[str, str | bytes] = {
        f"orig.{text(k)}": v for k, v in (fields.items() if isinstance(fields, dict) else [])
    }
    record.update(
        {
            "error": error[:4000],
            "group": group,
            "topic": topic,
            "stream_id": stream_id,
            "dead_at": f"{time.time():.3f}",
        }
    )
    pipe = client.pipeline(transaction=True)
    pipe.xadd(deadletter_stream(topic), record)  # type: ignore[arg-type]
    pipe.xack(event_stream(topic), group, stream_id)
    results = pipe.execute()
    return text(results[0])


def deadletter_topics(client: redis.Redis) -> list[str]:
    """Topics that have a dead-letter stream."""
    topics = {
        str(k)[len(DEADLETTER_STREAM_PREFIX) :]
        for k in client.scan_iter(match=f"{DEADLETTER_STREAM_PREFIX}*", count=500)
    }
    return sorted(topics)


def iter_dead_letters(
    client: redis.Redis, topics: Iterable[str]
) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Yield (topic, dead-letter id, record) for the topics' dead letters, oldest first."""
    for topic in topics:
        entries: Any = client.xrange(deadletter_stream(topic))
        for entry_id, record in entries or []:
            yield topic, text(entry_id), {text(k): text(v) for k, v in (record or {}).items()}


def original_fields(record: dict[str, str]) -> dict[str, str]:
    """The original entry fields kept in a dead-letter record."""
    return {k[len("orig.") :]: v for k, v in record.items() if k.startswith("orig.")}


def dead_letters(
    client: redis.Redis, topic: str, count: int | None = None
) -> list[tuple[str, dict[str, str]]]:
    """(dead-letter id, record) of one topic, oldest first; at most ``count`` of them."""
    entries: Any = client.xrange(deadletter_stream(topic), count=count)
    return [
        (text(entry_id), {text(k): text(v) for k, v in (record or {}).items()})
        for entry_id, record in entries or []
    ]


def retry_dead_letter(client: redis.Redis, topic: str, dead_id: str, maxlen: int) -> bool:
    """Re-add a dead letter's original entry to its topic stream and delete it, atomically.

    False when it is gone (retried or purged meanwhile) or kept no original fields.
    """
    dead = deadletter_stream(topic)
    moved = [False]

    def move(pipe: Any) -> None:
        # WATCHed: a concurrent retry or purge of this stream makes EXEC fail, and we
        # look again, so one dead letter is never re-added twice.
        entries = pipe.xrange(dead, dead_id, dead_id)
        record = {text(k): text(v) for k, v in (entries[0][1] if entries else {}).items()}
        fields = original_fields(record)
        moved[0] = bool(fields)
        if fields:
            pipe.multi()
            pipe.xadd(event_stream(topic), fields, maxlen=maxlen, approximate=True)
            pipe.xdel(dead, dead_id)

    client.transaction(move, dead)
    return moved[0]


def purge_dead_letter(client: redis.Redis, topic: str, dead_id: str) -> bool:
    """Delete one dead letter; False when it was already gone."""
    return bool(client.xdel(deadletter_stream(topic), dead_id))
