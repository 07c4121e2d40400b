"""The stream entry layout: round trip, and every way an entry can be unparseable."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

from servicebus.outbox.codec import decode_fields, encode_fields
from servicebus.outbox.errors import OutboxError, UndecodableEvent

EID = str(uuid.uuid4())


def fields(**over: str) -> dict[str, str]:
    base = encode_fields(EID, "t.x", "k1", {"a": 1}, {"correlation_id": "c"}, "2026-01-01")
    base.update(over)
    return base


def test_round_trip_keeps_id_key_payload_and_headers():
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    raw = encode_fields(EID, "t.x", "k1", {"p": Decimal("1.50"), "at": when}, {"h": 1}, "now")
    event = decode_fields("1-0", raw, database="pg")
    assert (event.id, event.topic, event.key, event.stream_id) == (EID, "t.x", "k1", "1-0")
    assert event.payload == {"p": "1.50", "at": "2026-01-02T03:04:05Z"}
    assert event.headers == {"h": 1} and event.database == "pg"


@pytest.mark.parametrize(
    "raw",
    [
        {"garbage": "x"},
        fields(v="999"),
        fields(id="not-a-uuid"),
        fields(payload="{oops"),
        fields(headers="[1, 2]"),
        {k: v for k, v in fields().items() if k != "topic"},
    ],
    ids=["no-version", "future-version", "bad-id", "bad-json", "headers-not-object", "no-topic"],
)
def test_unparseable_entries_raise_a_named_error(raw):
    with pytest.raises(UndecodableEvent) as info:
        decode_fields("7-0", raw)
    assert "7-0" in str(info.value)
    assert "servicebus_deadletters" in str(info.value)  # says what to do
    assert isinstance(info.value, OutboxError)


def test_payload_is_compact_json():
    assert json.loads(fields()["payload"]) == {"a": 1}
    assert " " not in fields()["payload"]


@pytest.mark.parametrize(
    "raw",
    [
        fields(payload="[" * 100_000 + "]" * 100_000),
        fields(headers="{" * 50_000),
        fields(id="12"),
        fields(topic="payments.refund"),
    ],
    ids=["payload-nested-too-deep", "headers-unclosed", "id-number", "topic-of-another-stream"],
)
def test_odd_entries_raise_the_named_error_not_something_else(raw):
    with pytest.raises(UndecodableEvent):
        decode_fields("8-0", raw, stream_topic="t.x")


def test_entry_of_its_own_stream_topic_decodes():
    assert decode_fields("9-0", fields(), stream_topic="t.x").topic == "t.x"
