"""The stream entry layout of an event: encode from an outbox row, decode for a consumer."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from servicebus.outbox.constants import ENTRY_VERSION
from servicebus.outbox.errors import UndecodableEvent


@dataclass(frozen=True)
class Event:
    """One durable event as a handler sees it."""

    id: str
    topic: str
    key: str
    payload: Any
    headers: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    stream_id: str = ""
    # The database alias the consumer runs the handler's transaction on.
    database: str = "default"


def encode_fields(
    event_id: str, topic: str, key: str, payload: Any, headers: dict[str, Any], created_at: str
) -> dict[str, str]:
    """Stream entry fields; the event id travels along so consumers can dedupe."""
    return {
        "v": ENTRY_VERSION,
        "id": event_id,
        "topic": topic,
        "key": key,
        "payload": json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":")),
        "headers": json.dumps(headers, cls=DjangoJSONEncoder, separators=(",", ":")),
        "created_at": created_at,
    }


def decode_fields(
    stream_id: str, fields: dict[str, str], database: str = "default", stream_topic: str = ""
) -> Event:
    """Parse stream entry fields into an Event, or raise UndecodableEvent saying why.

    ``stream_topic`` is the topic of the stream the entry was read from; an entry naming
    another topic is refused, so a stray entry cannot run another topic's handlers.
    """
    if not isinstance(fields, dict):
        raise UndecodableEvent(f"entry {stream_id} has no fields")
    if fields.get("v") != ENTRY_VERSION:
        raise UndecodableEvent(f"entry {stream_id} has unknown version {fields.get('v')!r:.40}")
    try:
        event_id = str(uuid.UUID(fields["id"]))
        topic = fields["topic"]
        # RecursionError: valid JSON nested deeper than the parser's stack (a 200 KB entry).
        payload = json.loads(fields["payload"])
        headers = json.loads(fields.get("headers") or "{}")
    except (KeyError, ValueError, TypeError, RecursionError) as exc:
        raise UndecodableEvent(f"entry {stream_id} cannot be parsed: {exc!r:.200}") from exc
    if not isinstance(headers, dict):
        raise UndecodableEvent(f"entry {stream_id} has headers that are not an object")
    if stream_topic and topic != stream_topic:
        raise UndecodableEvent(
            f"entry {stream_id} names topic {topic!r:.80} but was read from {stream_topic!r}"
        )
    return Event(
        id=event_id,
        topic=topic,
        key=fields.get("key", ""),
        payload=payload,
        headers=headers,
        created_at=fields.get("created_at", ""),
        stream_id=stream_id,
        database=database,
    )
