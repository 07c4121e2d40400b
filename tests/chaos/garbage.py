"""Hostile channel messages: random bytes, msgpack of every type, mutated envelopes.

Each item says what a correct process must do with it: ``undecodable`` (never a valid
message dict: dropped and counted by the layer or the core) and, for a mutated ``record``
request, ``must_not_run`` (its key must never reach the handler).
"""

from __future__ import annotations

import math
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import msgpack

from servicebus.conf import PROTOCOL_VERSION, REPLY_TYPE, REQUEST_TYPE
from tests.chaos.support import member

SINK = "servicebus.reply.chaos-sink!x"  # replies to garbage land here, read by nobody
MAX_BODY = 8 * 1024 * 1024  # servicebus's default MAX_BODY_SIZE


@dataclass
class Item:
    """One hostile sorted-set member and what must happen to it."""

    data: bytes
    kind: str
    undecodable: bool = False
    must_not_run: str | None = None  # the record key it carries, if it must never run


def deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def non_dicts(r: random.Random) -> list[Any]:
    """Valid msgpack of every type that is not a map."""
    return [
        None,
        True,
        False,
        0,
        -1,
        r.randint(-(2**63), 2**64 - 1),
        r.random(),
        math.nan,
        math.inf,
        "",
        "x" * r.randint(1, 300),
        b"\x00" * r.randint(1, 300),
        [],
        [1, "a", None],
        deep(50),
        msgpack.ExtType(r.randint(0, 127), b"ext"),
    ]


def request(key: str, **over: Any) -> dict[str, Any]:
    """A valid ``record`` request envelope for ``key``, with fields overridden or removed."""
    message: dict[str, Any] = {
        "type": REQUEST_TYPE,
        "v": PROTOCOL_VERSION,
        "id": uuid.uuid4().hex,
        "cid": uuid.uuid4().hex,
        "method": "record",
        "body": msgpack.packb(key),
        "reply_to": SINK,
        "deadline": time.time() + 60,
        "headers": {},
        "flags": [],
        "caller": "fuzz",
    }
    for name, value in over.items():
        if value is DROP:
            message.pop(name, None)
        else:
            message[name] = value
    return message


DROP = object()

# Mutations of a valid request: (field, value, must it never run?). None: either is fine.
MUTATIONS: list[tuple[str, Any, bool | None]] = [
    ("type", None, True),
    ("type", 1, True),
    ("type", REPLY_TYPE, True),
    ("type", b"servicebus.request", True),
    ("type", DROP, True),
    ("v", True, True),
    ("v", 2, True),
    ("v", "1", True),
    ("v", None, True),
    ("v", DROP, True),
    ("v", 1.0, None),
    ("id", None, True),
    ("id", 1, True),
    ("id", "", True),
    ("id", ["a"], True),
    ("id", DROP, True),
    ("method", None, True),
    ("method", 1, True),
    ("method", "", True),
    ("method", ["record"], True),
    ("method", "no_such_method", True),
    ("method", "x" * 10_000, True),
    ("deadline", "soon", True),
    ("deadline", None, True),
    ("deadline", True, True),
    ("deadline", math.nan, True),
    ("deadline", math.inf, True),
    ("deadline", -math.inf, True),
    ("deadline", -1, True),
    ("deadline", 0, True),
    ("deadline", DROP, True),
    ("deadline", 1e308, None),
    ("headers", [], None),
    ("headers", "h", True),
    ("headers", {"a": 1}, True),
    ("headers", {"a": None}, True),
    ("headers", {"a": "x" * 100_000}, None),
    ("flags", "f", True),
    ("flags", [1], True),
    ("flags", {"a": 1}, True),
    ("caller", 1, True),
    ("caller", ["x"], True),
    ("cid", 1, None),
    ("cid", "x" * 100_000, None),
    ("reply_to", 1, None),
    ("reply_to", b"x", None),
    ("reply_to", "", None),
    ("reply_to", "not a channel name", None),
    ("reply_to", "x" * 1000, None),
    ("reply_to", "servicebus.reply.nobody!abc", None),
    ("reply_to", "other.request", None),
    ("__asgi_channel__", 1, None),
    ("__asgi_channel__", "other.request", None),
    ("extra", {"nested": deep(20)}, None),
]


def request_garbage(r: random.Random, count: int, huge: int = 2) -> list[Item]:
    """``count`` hostile members for a request key (plus ``huge`` bodies over MAX_BODY_SIZE)."""
    items: list[Item] = []
    n = 0
    while len(items) < count:
        n += 1
        pick = r.random()
        key = f"fuzz-{n}"
        if pick < 0.15:
            data = member(None, raw=r.randbytes(r.randint(0, 200)))
            # Random bytes may by chance be valid msgpack after the prefix; only count the
            # ones that cannot be a dict (decoding them shows it).
            items.append(Item(data, "random-bytes", undecodable=not _is_map(data)))
        elif pick < 0.2:
            items.append(Item(r.randbytes(r.randint(0, 11)), "shorter-than-prefix", True))
        elif pick < 0.45:
            value = r.choice(non_dicts(r))
            items.append(Item(member(value), f"msgpack-{type(value).__name__}", True))
        elif pick < 0.5:
            nested = r.randbytes(12) + b"\x91" * 50_000 + b"\xc0"  # [[[...]]] 50,000 deep
            items.append(Item(nested, "nested-too-deep", True))
        elif pick < 0.55:
            bad_map = r.randbytes(12) + b"\x81\x91\x01\x01"  # {[1]: 1}: a key msgpack refuses
            items.append(Item(bad_map, "map-with-list-key", True))
        else:
            name, value, never = r.choice(MUTATIONS)
            message = request(key, **{name: value})
            items.append(
                Item(
                    member(message), f"{name}={_short(value)}", must_not_run=key if never else None
                )
            )
    for i in range(huge):
        key = f"fuzz-huge-{i}"
        body = msgpack.packb({"key": key, "pad": "x" * (MAX_BODY + 1024)})
        items.append(Item(member(request(key, body=body)), "body-over-max", must_not_run=key))
    r.shuffle(items)
    return items


def invalid_requests() -> list[Item]:
    """One ``record`` request per mutation that makes it invalid, plus an oversized body."""
    items = []
    for n, (name, value, never) in enumerate(MUTATIONS):
        if never:
            key = f"invalid-{n}"
            items.append(
                Item(
                    member(request(key, **{name: value})),
                    f"{name}={_short(value)}",
                    must_not_run=key,
                )
            )
    key = "invalid-huge"
    body = msgpack.packb({"key": key, "pad": "x" * (MAX_BODY + 1024)})
    items.append(Item(member(request(key, body=body)), "body-over-max", must_not_run=key))
    return items


def reply_garbage(r: random.Random, count: int, reply_channel: str) -> list[Item]:
    """``count`` hostile members for a caller's ``!`` reply key."""
    base = reply_channel[: reply_channel.index("!") + 1]
    items: list[Item] = []
    while len(items) < count:
        pick = r.random()
        if pick < 0.15:
            data = r.randbytes(r.randint(0, 200))
            items.append(Item(data, "random-bytes", undecodable=not _is_map(data)))
        elif pick < 0.35:
            value = r.choice(non_dicts(r))
            items.append(Item(member(value), f"msgpack-{type(value).__name__}", True))
        elif pick < 0.55:
            # The routing field of a process-local message with every wrong type.
            bad = r.choice([None, 1, 1.5, b"bytes", ["a"], {"a": 1}, True, "", "no-bang"])
            items.append(Item(member({"__asgi_channel__": bad, "type": REPLY_TYPE}), "bad-route"))
        elif pick < 0.6:
            other = base + uuid.uuid4().hex  # a local channel nobody listens on
            items.append(Item(member({"__asgi_channel__": other, "id": "x"}), "unknown-local"))
        else:
            items.append(
                Item(member({"__asgi_channel__": reply_channel, **_bad_reply(r)}), "reply")
            )
    return items


def _bad_reply(r: random.Random) -> dict[str, Any]:
    # Well routed, badly formed (or for nobody's request): the caller must drop each.
    unknown = uuid.uuid4().hex
    return r.choice(
        [
            {"type": "servicebus.request", "id": unknown},
            {"type": REPLY_TYPE, "id": 1, "ok": True, "body": b"\xc0"},
            {"type": REPLY_TYPE, "id": None, "ok": False},
            {"type": REPLY_TYPE, "id": unknown, "ok": True, "body": "not-bytes"},
            {"type": REPLY_TYPE, "id": unknown, "ok": True, "body": b"\xc1"},
            {"type": REPLY_TYPE, "id": unknown, "ok": False, "error": "not-a-dict"},
            {"type": REPLY_TYPE, "id": unknown, "ok": True, "body": b"\xc0", "v": 99},
            {"type": REPLY_TYPE, "id": ["list"], "ok": "yes"},
            {"type": None},
            {},
        ]
    )


def _is_map(data: bytes) -> bool:
    try:
        return isinstance(msgpack.unpackb(data[12:], raw=False), dict)
    except Exception:
        return False


def _short(value: Any) -> str:
    if value is DROP:
        return "missing"
    text = repr(value)
    return text if len(text) < 20 else text[:17] + "..."
