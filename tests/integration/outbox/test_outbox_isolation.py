"""Per-entry isolation in the consumer: a malformed entry is dead-lettered, its batch flows on."""

from __future__ import annotations

import uuid

import pytest
import redis

from servicebus.outbox import publish_event
from servicebus.outbox.codec import encode_fields
from servicebus.outbox.constants import deadletter_stream, event_stream
from servicebus.outbox.consumer import Consumer, consume_until_idle

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True, databases="__all__")]

TOPIC = "orders.placed"
DEEP = "[" * 100_000 + "]" * 100_000  # valid JSON that json.loads cannot nest that far


def valid(**over: str | bytes) -> dict[str, str | bytes]:
    fields: dict[str, str | bytes] = dict(
        encode_fields(str(uuid.uuid4()), TOPIC, "odd", {}, {}, "2026-01-01")
    )
    fields.update(over)
    return fields


ODD = {
    "deep-payload": valid(payload=DEEP),
    "deep-headers": valid(headers=DEEP),
    "headers-list": valid(headers="[1]"),
    "headers-number": valid(headers="7"),
    "payload-nan": valid(payload="NaN"),
    "id-number": valid(id="12"),
    "id-empty": valid(id=""),
    "version-2": valid(v="2"),
    "version-bytes": valid(v=b"\xff1"),
    "topic-elsewhere": valid(topic="payments.refund"),
    "topic-missing": {k: v for k, v in valid().items() if k != "topic"},
    "key-not-utf8": valid(key=b"\xc3\x28"),
    "only-junk": {b"\xff\xfe": b"\x00"},
}
# Entries that must be dead-lettered; payload-nan is valid JSON (Python reads NaN).
BAD = set(ODD) - {"payload-nan"}


def test_odd_entries_in_one_batch_never_stop_their_neighbours(
    alias, outbox_settings, redis_client, handlers
):
    seen: list[str] = []
    handlers.append((TOPIC, lambda e: seen.append(e.key)))
    consumer = Consumer("replica", [TOPIC], using=alias)
    consumer.ensure_groups()
    client = redis.Redis.from_url(outbox_settings["REDIS_URL"])  # bytes in, bytes out
    good = []
    for i, fields in enumerate(ODD.values()):  # each odd entry between two valid ones
        publish_event(TOPIC, {}, key=f"ok{i}", using=alias)
        good.append(f"ok{i}")
        client.xadd(event_stream(TOPIC), fields)
    client.close()
    result = consume_until_idle(consumer)
    assert sorted(seen) == sorted([*good, "odd"])  # payload-nan is a valid event
    assert result.dead_lettered == len(BAD)
    assert result.handled == len(good) + 1
    assert redis_client.xlen(deadletter_stream(TOPIC)) == len(BAD)
    assert int(redis_client.xpending(event_stream(TOPIC), "replica")["pending"]) == 0
    publish_event(TOPIC, {}, key="after", using=alias)
    assert consume_until_idle(consumer).handled == 1 and seen[-1] == "after"
