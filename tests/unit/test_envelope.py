"""The wire envelope: encoding, validation, and what a worker refuses."""

from __future__ import annotations

import time

import pytest

from servicebus import BadRequest, PayloadTooLarge
from servicebus.envelope import (
    EnvelopeError,
    decode_body,
    encode_body,
    parse_reply,
    parse_request,
    request_message,
)


def _request(**overrides: object) -> dict[str, object]:
    message = request_message(
        id="r1",
        correlation_id="c1",
        method="m",
        body=encode_body({"a": 1}, 1000),
        reply_to="reply!x",
        deadline=time.time() + 5,
        headers={"h": "v"},
        flags={"f"},
        caller="orders",
    )
    message.update(overrides)
    return message


def test_round_trip() -> None:
    env = parse_request(_request())
    assert (env.id, env.correlation_id, env.method, env.caller) == ("r1", "c1", "m", "orders")
    assert decode_body(env.body) == {"a": 1}
    assert env.flags == frozenset({"f"}) and env.headers == {"h": "v"}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"type": "other"}, "type"),
        ({"v": 2}, "version"),
        ({"id": None}, "id"),
        ({"method": ""}, "method"),
        ({"deadline": "soon"}, "deadline"),
        ({"deadline": float("nan")}, "deadline"),
        ({"deadline": float("inf")}, "deadline"),
        ({"deadline": float("-inf")}, "deadline"),
        ({"v": True}, "version"),
        ({"v": 1.0}, "version"),
        ({"v": "1"}, "version"),
        ({"body": {"a": 1}}, "body"),
        ({"headers": {"h": 1}}, "header"),
        ({"flags": "f"}, "flags"),
        ({"caller": 3}, "caller"),
    ],
)
def test_invalid_envelopes_keep_reply_address(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(EnvelopeError, match=reason) as info:
        parse_request(_request(**overrides))
    assert info.value.reply_to == "reply!x"


def test_non_dict_message() -> None:
    with pytest.raises(EnvelopeError) as info:
        parse_request([1, 2])
    assert info.value.reply_to is None


def test_body_limits_and_types() -> None:
    with pytest.raises(PayloadTooLarge):
        encode_body("x" * 100, 50)
    with pytest.raises(BadRequest, match="Decimal"):
        import decimal

        encode_body({"price": decimal.Decimal("1.5")}, 1000)
    with pytest.raises(BadRequest):
        decode_body(b"\xc1")
    with pytest.raises(BadRequest):
        decode_body("not bytes")


def test_parse_reply_rejects_garbage() -> None:
    assert parse_reply({"type": "servicebus.reply", "id": 5}) is None
    assert parse_reply({"type": "x"}) is None
    assert parse_reply({"type": "servicebus.reply", "id": "a", "ok": True, "body": "s"}) is None
    reply = parse_reply({"type": "servicebus.reply", "v": 1, "id": "a", "ok": False, "error": {}})
    assert reply is not None and reply.ok is False
    for version in (None, True, 1.0, 2):
        bad = {"type": "servicebus.reply", "v": version, "id": "a", "ok": False, "error": {}}
        assert parse_reply(bad) is None
