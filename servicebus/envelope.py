"""The request/reply envelope: one versioned wire contract (see docs/protocol.md).

A request is a channel-layer message (a dict) whose ``body`` is msgpack bytes, encoded
once at the caller; the layer's own serializer then carries the small envelope. A body
that cannot be encoded fails at the caller before anything is sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack

from servicebus.conf import PROTOCOL_VERSION, REPLY_TYPE, REQUEST_TYPE
from servicebus.errors import BadRequest, PayloadTooLarge

__all__ = [
    "EnvelopeError",
    "Reply",
    "RequestEnvelope",
    "decode_body",
    "encode_body",
    "error_reply",
    "ok_reply",
    "parse_reply",
    "parse_request",
    "request_message",
    "validate_headers",
]

_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack


def encode_body(body: Any, max_size: int) -> bytes:
    """Encode a body with msgpack; BadRequest when it can't be, PayloadTooLarge past max_size."""
    try:
        data = _packb(body)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRequest(
            f"body cannot be serialized: {exc}; send only dicts, lists, str, bytes, "
            "int, float, bool and None (convert Decimal, datetime, UUID to str)"
        ) from None
    if len(data) > max_size:
        raise PayloadTooLarge(f"body is {len(data)} bytes encoded, over the {max_size} limit")
    return data


def decode_body(data: Any) -> Any:
    """Decode a body encoded by ``encode_body``; BadRequest when it is not valid msgpack."""
    if not isinstance(data, bytes):
        raise BadRequest(f"body must be msgpack bytes, got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise BadRequest(f"body is not valid msgpack: {exc}") from None


def validate_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Headers must be a mapping of str to str; BadRequest otherwise."""
    if not headers:
        return {}
    # A plain dict first: the Mapping ABC check costs more than the rest here.
    if type(headers) is not dict and not isinstance(headers, Mapping):
        raise BadRequest("headers must be a mapping of str to str")
    for key, value in headers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise BadRequest(f"header {key!r} must map str to str, got {type(value).__name__}")
    return dict(headers)


def request_message(
    *,
    id: str,
    correlation_id: str,
    method: str,
    body: bytes,
    reply_to: str | None,
    deadline: float,
    headers: Mapping[str, str],
    flags: Iterable[str],
    caller: str,
    parent: str | None = None,
) -> dict[str, Any]:
    """Build the request message sent on a service's request channel."""
    message: dict[str, Any] = {
        "type": REQUEST_TYPE,
        "v": PROTOCOL_VERSION,
        "id": id,
        "cid": correlation_id,
        "method": method,
        "body": body,
        "reply_to": reply_to,
        "deadline": deadline,
        "headers": dict(headers),
        "flags": sorted(flags),
        "caller": caller,
    }
    if parent is not None:
        # Optional: the request being handled when this one was made (traces).
        message["parent"] = parent
    return message


class EnvelopeError(Exception):
    """A message is not a valid request; ``reply_to``/``id`` are set when it can be answered."""

    def __init__(self, reason: str, reply_to: str | None = None, id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reply_to = reply_to
        self.id = id


class RequestEnvelope:
    """A validated request message; the body is still encoded. Read-only by convention.

    A plain slots class, not a frozen dataclass: one is made per request, and a frozen
    dataclass's ``__init__`` costs several times as much (one ``object.__setattr__`` per field).
    """

    __slots__ = (
        "body",
        "caller",
        "correlation_id",
        "deadline",
        "flags",
        "headers",
        "id",
        "kid",
        "method",
        "parent",
        "reply_to",
    )

    def __init__(
        self,
        id: str,
        correlation_id: str,
        method: str,
        body: bytes,
        reply_to: str | None,
        deadline: float,
        headers: dict[str, str],
        flags: frozenset[str],
        caller: str,
        parent: str | None = None,
        # Id of the signing key (signed envelopes only): the reply is signed with the same key.
        kid: str | None = None,
    ) -> None:
        self.id = id
        self.correlation_id = correlation_id
        self.method = method
        self.body = body
        self.reply_to = reply_to
        self.deadline = deadline
        self.headers = headers
        self.flags = flags
        self.caller = caller
        self.parent = parent
        self.kid = kid

    def __repr__(self) -> str:
        return f"<RequestEnvelope {self.method} id={self.id} from {self.caller or '?'}>"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_NO_FLAGS: frozenset[str] = frozenset()


def parse_request(message: Any) -> RequestEnvelope:
    """Validate a received message as a request envelope; EnvelopeError when it is not one."""
    if not isinstance(message, dict):
        raise EnvelopeError(f"message is a {type(message).__name__}, not a dict")
    get = message.get
    reply_to = _str_or_none(get("reply_to"))
    req_id = _str_or_none(get("id"))
    if get("type") != REQUEST_TYPE:
        raise EnvelopeError(
            f"message type is {get('type')!r}, not {REQUEST_TYPE!r}", reply_to, req_id
        )
    version = get("v")
    # Exactly the int: True == 1 and 1.0 == 1 in Python, but they are not version 1.
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise EnvelopeError(f"unsupported protocol version {version!r}", reply_to, req_id)
    if req_id is None:
        raise EnvelopeError("request has no id", reply_to)
    method = get("method")
    if not isinstance(method, str) or not method:
        raise EnvelopeError("request has no method", reply_to, req_id)
    deadline = get("deadline")
    if type(deadline) is not float and (
        not isinstance(deadline, (int, float)) or isinstance(deadline, bool)
    ):
        raise EnvelopeError("request has no numeric deadline", reply_to, req_id)
    if not math.isfinite(deadline):
        # NaN compares False with everything: it would mean "never expires".
        raise EnvelopeError(f"request deadline {deadline!r} is not finite", reply_to, req_id)
    body = get("body")
    if not isinstance(body, bytes):
        raise EnvelopeError("request body must be msgpack bytes", reply_to, req_id)
    headers = get("headers") or {}
    flags = get("flags") or []
    caller = get("caller") or ""
    if headers:
        try:
            headers = validate_headers(headers)
        except BadRequest as exc:
            raise EnvelopeError(exc.message, reply_to, req_id) from None
    else:
        headers = {}
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise EnvelopeError("flags must be a list of str", reply_to, req_id)
    if not isinstance(caller, str):
        raise EnvelopeError("caller must be a str", reply_to, req_id)
    parent = get("parent")
    if parent is not None and not isinstance(parent, str):
        raise EnvelopeError("parent must be a str request id", reply_to, req_id)
    return RequestEnvelope(
        req_id,
        _str_or_none(get("cid")) or req_id,
        method,
        body,
        reply_to,
        float(deadline),
        headers,
        frozenset(flags) if flags else _NO_FLAGS,
        caller,
        parent or None,
        _str_or_none(get("kid")),
    )


def ok_reply(id: str, body: bytes) -> dict[str, Any]:
    """A success reply carrying the encoded result."""
    return {"type": REPLY_TYPE, "v": PROTOCOL_VERSION, "id": id, "ok": True, "body": body}


def error_reply(id: str | None, error: Mapping[str, Any]) -> dict[str, Any]:
    """An error reply carrying ``{"code", "message", "details"}``."""
    return {"type": REPLY_TYPE, "v": PROTOCOL_VERSION, "id": id, "ok": False, "error": dict(error)}


class Reply:
    """A parsed reply: either ``body`` (encoded) or ``error`` (data). Read-only by convention."""

    __slots__ = ("body", "error", "id", "ok")

    def __init__(self, id: str, ok: bool, body: bytes | None, error: Any) -> None:
        self.id = id
        self.ok = ok
        self.body = body
        self.error = error

    def __repr__(self) -> str:
        return f"<Reply {self.id} {'ok' if self.ok else 'error'}>"


def parse_reply(message: Any) -> Reply | None:
    """Parse a reply message; None when it is not one (the caller counts and drops it)."""
    if not isinstance(message, dict):
        return None
    get = message.get
    if get("type") != REPLY_TYPE:
        return None
    version = get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        return None
    req_id = get("id")
    if not isinstance(req_id, str):
        return None
    if get("ok") is True:
        body = get("body")
        if not isinstance(body, bytes):
            return None
        return Reply(req_id, True, body, None)
    return Reply(req_id, False, None, get("error"))
