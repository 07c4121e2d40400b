"""Signed envelopes on the in-memory layer: forged, unsigned and replayed messages get nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import servicebus
from servicebus.envelope import encode_body, error_reply, ok_reply, request_message
from servicebus.metrics import metrics
from servicebus.service import Service
from servicebus.signing import Signer
from servicebus.testing import serve
from servicebus.transport import get_transport

NEW = "new-key-0123456789abcdef"
OLD = "old-key-0123456789abcdef"


def _request(**overrides: Any) -> dict[str, Any]:
    message = request_message(
        id="r1",
        correlation_id="c1",
        method="m",
        body=encode_body({"a": 1}, 1000),
        reply_to="servicebus.reply.x!y",
        deadline=time.time() + 5,
        headers={"h": "v", "a": "b"},
        flags={"f", "g"},
        caller="orders",
        parent="p1",
    )
    message.update(overrides)
    return message


def test_first_key_signs_any_key_verifies() -> None:
    old_caller, rotated_worker = Signer([OLD]), Signer([NEW, OLD])
    message = _request()
    old_caller.sign_request("svc.request", message)
    assert rotated_worker.check_request("svc.request", message) is None
    new_caller = Signer([NEW])
    fresh = _request()
    new_caller.sign_request("svc.request", fresh)
    assert rotated_worker.check_request("svc.request", fresh) is None
    assert old_caller.check_request("svc.request", fresh) == "bad_signature"  # unknown key
    assert fresh["kid"] != message["kid"] and len(fresh["sig"]) == 32


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "r2"),
        ("cid", "c2"),
        ("parent", None),
        ("method", "other"),
        ("body", encode_body({"a": 2}, 1000)),
        ("reply_to", "servicebus.reply.evil!y"),
        ("deadline", time.time() + 3600),
        ("caller", "admin"),
        ("headers", {"h": "v"}),
        ("flags", ["f", "g", "admin"]),
        ("v", 2),
        ("sig", b"\x00" * 32),
        ("kid", "ffffffff"),
        ("sig", b"short"),
    ],
)
def test_any_changed_field_breaks_the_signature(field: str, value: Any) -> None:
    signer = Signer([NEW])
    message = _request()
    signer.sign_request("svc.request", message)
    message[field] = value
    assert signer.check_request("svc.request", message) == "bad_signature"


def test_unsigned_and_wrong_channel() -> None:
    signer = Signer([NEW])
    assert signer.check_request("svc.request", _request()) == "unsigned"
    message = _request()
    signer.sign_request("svc.request", message)
    assert signer.check_request("other.request", message) == "bad_signature"  # no replay there
    # Header order does not matter; the values do.
    message["headers"] = {"a": "b", "h": "v"}
    assert signer.check_request("svc.request", message) is None


def test_replies_are_bound_to_their_request() -> None:
    signer = Signer([NEW, OLD])
    reply = ok_reply("r1", encode_body("genuine", 100))
    signer.sign_reply(reply)
    assert signer.check_reply(reply) is None
    assert signer.check_reply({**reply, "id": "r2"}) == "bad_signature"
    assert signer.check_reply({**reply, "body": encode_body("forged", 100)}) == "bad_signature"
    assert signer.check_reply(ok_reply("r1", b"\x01")) == "unsigned"
    error = error_reply(
        "r1", {"code": "x", "message": "m", "details": {"b": 1, "a": [1, {"z": 2}]}}
    )
    signer.sign_reply(error)
    reordered = {
        **error,
        "error": {"details": {"a": [1, {"z": 2}], "b": 1}, "message": "m", "code": "x"},
    }
    assert signer.check_reply(reordered) is None
    assert (
        signer.check_reply({**error, "error": {**error["error"], "code": "y"}}) == "bad_signature"
    )


ran: list[Any] = []
svc = Service("signed")


@svc.method()
async def act(request: servicebus.Request) -> Any:
    ran.append(request.body)
    return request.body


@svc.method()
async def slow(request: servicebus.Request) -> Any:
    await asyncio.sleep(0.2)
    return "genuine"


@pytest.fixture
def keys(settings) -> None:
    settings.SERVICEBUS = {"SERVICE_NAME": "tests", "SIGNING_KEYS": [NEW, OLD]}
    ran.clear()


async def test_signed_calls_work_and_unsigned_requests_are_not_run(keys) -> None:
    transport = get_transport()
    async with serve(svc):
        assert await servicebus.acall("signed.request", "act", 1) == 1
        forged = request_message(
            id="evil",
            correlation_id="evil",
            method="act",
            body=encode_body("evil", 100),
            reply_to=await transport.reply_channel(),
            deadline=time.time() + 5,
            headers={},
            flags=[],
            caller="orders",
        )
        await transport.send("signed.request", forged)
        await transport.send("signed.request", {**forged, "id": "evil2", "kid": "x", "sig": b"y"})
        await transport.send("signed.request", {"type": "servicebus.request", "reply_to": "r!x"})
        assert await servicebus.acall("signed.request", "act", 2) == 2
        for _ in range(100):
            if metrics.get("requests_unsigned") and metrics.get("requests_bad_signature"):
                break
            await asyncio.sleep(0.01)
        # Nothing answered: not even a bad_request for the malformed one.
        assert await transport.receive(forged["reply_to"], 1, 0.05) == []
        assert await transport.receive("r!x", 1, 0.05) == []
    assert ran == [1, 2]
    assert metrics.get("requests_unsigned") == 1
    assert metrics.get("requests_bad_signature") == 1
    assert metrics.get("requests_malformed") == 1


async def test_forged_reply_is_dropped_and_the_genuine_one_accepted(keys, monkeypatch) -> None:
    transport = get_transport()
    seen: list[dict[str, Any]] = []
    send_nowait = transport.send_nowait

    def spy(channel: str, message: dict[str, Any], sent: Any = None) -> None:
        if channel == "signed.request":
            seen.append(message)  # what a process reading Redis (MONITOR) would see
        send_nowait(channel, message, sent)

    monkeypatch.setattr(transport, "send_nowait", spy)
    async with serve(svc):
        call = asyncio.create_task(servicebus.acall("signed.request", "slow", timeout=5))
        while not seen:
            await asyncio.sleep(0.005)
        reply_to, request_id = seen[0]["reply_to"], seen[0]["id"]
        # A rogue process answers first, without the key: unsigned, then a made-up signature.
        forged = ok_reply(request_id, encode_body("forged", 100))
        await transport.send(reply_to, forged)
        await transport.send(reply_to, {**forged, "kid": Signer([OLD]).kid, "sig": b"\x01" * 32})
        assert await call == "genuine"
    assert metrics.get("replies_unsigned") == 1
    assert metrics.get("replies_bad_signature") == 1
    assert metrics.get("replies_late") == 0


async def test_a_replayed_request_runs_once(keys) -> None:
    transport = get_transport()
    layer = transport.layer
    call = asyncio.create_task(servicebus.acall("signed.request", "act", "once", timeout=5))
    # A rogue popper takes the signed request before any worker and puts it back twice.
    captured = await asyncio.wait_for(layer.receive("signed.request"), 5)
    await layer.send("signed.request", captured)
    await layer.send("signed.request", captured)
    async with serve(svc):
        assert await call == "once"
        for _ in range(100):
            if metrics.get("requests_replayed"):
                break
            await asyncio.sleep(0.01)
    assert ran == ["once"]
    assert metrics.get("requests_replayed") == 1


async def test_without_keys_nothing_is_signed() -> None:
    transport = get_transport()
    call = asyncio.create_task(servicebus.acall("signed.request", "act", 3, timeout=5))
    message = await asyncio.wait_for(transport.layer.receive("signed.request"), 5)
    assert "sig" not in message and "kid" not in message
    await transport.layer.send("signed.request", message)
    async with serve(svc):
        assert await call == 3


def test_a_reply_is_signed_with_the_key_of_its_request() -> None:
    worker, old_caller = Signer([NEW, OLD]), Signer([OLD])
    reply = ok_reply("r1", encode_body("x", 100))
    worker.sign_reply(reply, old_caller.kid)
    assert old_caller.check_reply(reply) is None
    unknown = ok_reply("r1", encode_body("x", 100))
    worker.sign_reply(unknown, "ffffffff")  # not ours: the first key signs
    assert unknown["kid"] == worker.kid
