"""Redis Streams transport: publish entries, consumer groups, dead letters."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster

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
    url, cluster = cluster_url(settings.REDIS_URL)
    options: dict[str, Any] = dict(timeouts)
    if not raw:
        options.update(decode_responses=True, encoding_errors="replace")
    if cluster:
        # Same command methods as redis.Redis (it is not a subclass, hence the cast).
        return cast(redis.Redis, ClusterStreams.from_url(url, **options))
    return redis.Redis.from_url(url, **options)


# ---- Redis Cluster (added by helper S for issue 13; see docs/scaling.md) ------------
# REDIS_URL "redis://node:6379/0?cluster=1" (any node, as a seed) selects redis-py's
# RedisCluster. A cluster runs a command only on keys of one slot, and each topic's
# stream hashes to its own slot: a multi-topic XREADGROUP is split per slot below, and
# dead_letter's XADD + XACK pair is pipelined without MULTI there.


def cluster_url(url: str) -> tuple[str, bool]:
    """``url`` without its ``cluster`` query option, and whether that option was on."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    flags = [v for k, v in query if k == "cluster"]
    if not flags:
        return url, False
    rest = urlencode([(k, v) for k, v in query if k != "cluster"])
    on = flags[-1].strip().lower() in ("1", "true", "yes", "on")
    return urlunsplit(parts._replace(query=rest)), on


class ClusterStreams(RedisCluster):
    """A RedisCluster whose XREADGROUP may name streams of several slots.

    Each slot's streams are read without blocking, in one command per slot (at most
    ``count`` entries each); when none has anything, one slot's streams (in turn) get
    the blocking read, so an idle pass still waits ``block`` ms in all and an entry on
    another slot waits at most one block.
    """

    _turn = 0

    def xreadgroup(  # type: ignore[override]
        self,
        groupname: str,
        consumername: str,
        streams: dict[Any, Any],
        count: int | None = None,
        block: int | None = None,
        noack: bool = False,
        **kwargs: Any,
    ) -> Any:
        """XREADGROUP over ``streams`` of any slots (see the class docstring)."""
        by_slot: dict[int, dict[Any, Any]] = {}
        for stream, start in streams.items():
            by_slot.setdefault(self.keyslot(stream), {})[stream] = start
        parts = list(by_slot.values())
        read = super().xreadgroup
        if len(parts) <= 1:
            return read(groupname, consumername, streams, count, block, noack, **kwargs)
        found: list[Any] = []
        for part in parts:
            reply = read(groupname, consumername, part, count, None, noack, **kwargs)
            if reply:
                found.extend(reply.items() if isinstance(reply, dict) else reply)
        if found or not block:
            return found
        self._turn = (self._turn + 1) % len(parts)
        reply = read(groupname, consumername, parts[self._turn], count, block, noack, **kwargs)
        return list(reply.items()) if isinstance(reply, dict) else reply or []


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
    # On a cluster the two streams sit on different slots: no MULTI (at worst, a crash
    # between the two leaves the entry pending and it is dead-lettered twice).
    pipe = client.pipeline(transaction=not isinstance(client, RedisCluster))
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
        for dead_id, record in dead_letters(client, topic):
            yield topic, dead_id, record


def _record(fields: Any) -> dict[str, str]:
    # A dead-letter entry's fields as text, whatever the client's decoding.
    return {text(k): text(v) for k, v in (fields or {}).items()}


def original_fields(record: dict[str, str]) -> dict[str, str]:
    """The original entry fields kept in a dead-letter record."""
    return {k[len("orig.") :]: v for k, v in record.items() if k.startswith("orig.")}


def dead_letters(
    client: redis.Redis, topic: str, count: int | None = None
) -> list[tuple[str, dict[str, str]]]:
    """(dead-letter id, record) of one topic, oldest first; at most ``count`` of them."""
    entries: Any = client.xrange(deadletter_stream(topic), count=count)
    return [(text(entry_id), _record(fields)) for entry_id, fields in entries or []]


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
        fields = original_fields(_record(entries[0][1] if entries else {}))
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
