"""Signed envelopes: HMAC-SHA256 over the fields that matter, keys rotated without downtime.

With ``SERVICEBUS["SIGNING_KEYS"] = ["current", "previous", ...]`` the first key signs and
any key verifies. A message carries ``kid`` (a short id of the key that signed it, so
verifying costs one HMAC, not one per key) and ``sig`` (32 bytes).

- request: v, id, cid, parent, method, body, reply_to, deadline, caller, headers, flags,
  and the channel it was sent to (a request cannot be replayed into another service);
- reply: v, id (the request it answers), ok, and body or error; signed with the key
  that signed the request.

Without keys nothing is signed or checked (stock peers interoperate as before).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack

from servicebus.conf import get_settings

__all__ = ["Signer", "current_signer", "signer_for"]

_pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_KID_LABEL = b"servicebus signing key id"
SIG_SIZE = hashlib.sha256().digest_size


def _mac(key: bytes, header: bytes, body: bytes) -> bytes:
    mac = hmac.new(key, header, hashlib.sha256)
    mac.update(body)  # the body last, without copying it into the header bytes
    return mac.digest()


def _canonical(value: Any) -> Any:
    # Error details are arbitrary data: sort mappings so both ends hash the same bytes.
    if isinstance(value, Mapping):
        return [[_canonical(k), _canonical(v)] for k, v in sorted(value.items(), key=repr)]
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


class Signer:
    """Signs and verifies envelopes with a list of keys: the first signs, any verifies."""

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ValueError("a Signer needs at least one key")
        self._by_kid: dict[str, bytes] = {}
        for key in keys:
            raw = key.encode() if isinstance(key, str) else bytes(key)
            kid = hmac.new(raw, _KID_LABEL, hashlib.sha256).hexdigest()[:8]
            self._by_kid.setdefault(kid, raw)
        # The first key signs: its kid is the first one filed.
        self.kid = next(iter(self._by_kid))
        self._key = self._by_kid[self.kid]

    @staticmethod
    def _request_mac(key: bytes, channel: str, m: Mapping[str, Any], body: bytes) -> bytes:
        headers = m.get("headers") or {}
        fields = [
            b"request",
            channel,
            m.get("v"),
            m.get("id"),
            m.get("cid"),
            m.get("parent"),
            m.get("method"),
            m.get("reply_to"),
            float(m.get("deadline") or 0.0),
            m.get("caller") or "",
            sorted(headers.items()) if isinstance(headers, Mapping) else headers,
            sorted(m.get("flags") or ()),
            len(body),
        ]
        return _mac(key, _pack(fields), body)

    @staticmethod
    def _reply_mac(key: bytes, m: Mapping[str, Any]) -> bytes:
        ok = m.get("ok") is True
        body = m.get("body") if ok else b""
        body = body if isinstance(body, bytes) else b""
        error = None if ok else _canonical(m.get("error"))
        return _mac(key, _pack([b"reply", m.get("v"), m.get("id"), ok, error, len(body)]), body)

    def sign_request(self, channel: str, message: dict[str, Any]) -> None:
        """Add ``kid`` and ``sig`` to a request about to be sent to ``channel``."""
        message["kid"] = self.kid
        message["sig"] = self._request_mac(self._key, channel, message, message["body"])

    def sign_reply(self, message: dict[str, Any], kid: str | None = None) -> None:
        """Add ``kid`` and ``sig`` to a reply, with the key ``kid`` when it is one of ours.

        A worker signs a reply with the key that signed the request, so a caller not yet
        given the newest key (mid-rotation) still believes the replies to its requests.
        """
        key = self._by_kid.get(kid) if kid is not None else None
        if key is None:
            kid, key = self.kid, self._key
        message["kid"] = kid
        message["sig"] = self._reply_mac(key, message)

    def _key_for(self, message: Mapping[str, Any]) -> tuple[bytes | None, str | None]:
        kid, sig = message.get("kid"), message.get("sig")
        if kid is None and sig is None:
            return None, "unsigned"
        key = self._by_kid.get(kid) if isinstance(kid, str) else None
        if key is None or not isinstance(sig, bytes) or len(sig) != SIG_SIZE:
            return None, "bad_signature"
        return key, None

    def check_request(self, channel: str, message: Mapping[str, Any]) -> str | None:
        """None when ``message`` was signed for ``channel`` with one of our keys, else why not."""
        key, problem = self._key_for(message)
        if key is None:
            return problem
        body = message.get("body")
        if not isinstance(body, bytes):
            return "bad_signature"
        expected = self._request_mac(key, channel, message, body)
        return None if hmac.compare_digest(expected, message["sig"]) else "bad_signature"

    def check_reply(self, message: Mapping[str, Any]) -> str | None:
        """None when the reply was signed with one of our keys, else why not."""
        key, problem = self._key_for(message)
        if key is None:
            return problem
        expected = self._reply_mac(key, message)
        return None if hmac.compare_digest(expected, message["sig"]) else "bad_signature"


@functools.lru_cache(maxsize=4)
def signer_for(keys: tuple[str, ...]) -> Signer:
    """The (cached) signer of ``keys``."""
    return Signer(keys)


def current_signer() -> Signer | None:
    """The signer for ``SERVICEBUS["SIGNING_KEYS"]``, or None when no keys are set."""
    keys = get_settings().SIGNING_KEYS
    return signer_for(keys) if keys else None
