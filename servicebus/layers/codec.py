"""Message bytes exactly as channels_redis writes them: random prefix + msgpack (or encrypted).

The serializer comes from channels_redis's public registry, so every format and the
symmetric encryption stay byte-compatible. For plain msgpack a faster path packs with a
reused Packer per thread and unpacks through a memoryview (no copy of the body to strip
the prefix); it writes and reads the very same bytes.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

import msgpack
from channels_redis.serializers import MsgPackSerializer, registry

from .resp import BIG_PIECE, Piece
from .stats import LayerStats

logger = logging.getLogger(__name__)


def _has_large_value(message: dict[str, Any]) -> bool:
    # A message with a large bytes "body" (servicebus's envelopes) is worth a packer of
    # its own; looking at that one key keeps the check cheap for every other message.
    body = message.get("body")
    return type(body) is bytes and len(body) >= BIG_PIECE


class _Packers(threading.local):
    """A reused msgpack Packer per thread (a Packer must not be shared between threads)."""

    def __init__(self) -> None:
        self.packer = msgpack.Packer()


class Codec:
    """serialize / deserialize, and ``decode_member`` that counts what it cannot read."""

    def __init__(
        self,
        serializer_format: str,
        *,
        random_prefix_length: int,
        expiry: int,
        symmetric_encryption_keys: list[str | bytes] | None,
        stats: LayerStats,
    ) -> None:
        self.serializer = registry.get_serializer(
            serializer_format,
            random_prefix_length=random_prefix_length,
            expiry=expiry,
            symmetric_encryption_keys=symmetric_encryption_keys,
        )
        self._stats = stats
        self._prefix_length = random_prefix_length
        self.fast = (
            type(self.serializer) is MsgPackSerializer
            and getattr(self.serializer, "crypter", None) is None
        )
        self._packers = _Packers()

    def serialize(self, message: dict[str, Any]) -> bytes:
        """channels_redis's format: random prefix + msgpack (or the configured serializer)."""
        if not self.fast:
            return bytes(self.serializer.serialize(message))
        packer = self._packers.packer
        if self._prefix_length > 0:
            return random.randbytes(self._prefix_length) + packer.pack(message)
        return bytes(packer.pack(message))

    def member(self, message: dict[str, Any]) -> bytes | tuple[bytes, Piece]:
        """``serialize``, but a large message comes as (prefix, payload) pieces.

        The RESP writer sends the two pieces as one bulk string: a 1 MB body is not
        copied once more just to put 12 random bytes in front of it, nor out of the
        packer's buffer into a bytes object (the payload is a view of a packer's own).
        """
        if not self.fast or self._prefix_length <= 0:
            return self.serialize(message)
        packer = self._packers.packer
        prefix = random.randbytes(self._prefix_length)
        if _has_large_value(message):
            # A packer of its own, kept alive by the view until the bytes are written.
            own = msgpack.Packer(autoreset=False)
            own.pack(message)
            view = own.getbuffer()
            if len(view) >= BIG_PIECE:
                return prefix, view
            return prefix + bytes(view)
        packed = packer.pack(message)
        if len(packed) >= BIG_PIECE:
            return prefix, packed
        return prefix + packed

    def deserialize(self, member: bytes) -> Any:
        """The message in ``member`` (raises if it is not readable)."""
        if not self.fast:
            return self.serializer.deserialize(member)
        if len(member) < self._prefix_length:
            raise ValueError("shorter than the random prefix")
        return msgpack.unpackb(memoryview(member)[self._prefix_length :])

    def decode_member(self, member: bytes) -> tuple[dict[str, Any], Any] | None:
        """One sorted-set member -> (message, its ``__asgi_channel__`` tag or None).

        Anything malformed is counted by reason (``undecodable``, ``not_a_dict``,
        ``bad_channel``) and gives None: one bad member never costs its neighbours.
        """
        try:
            message = self.deserialize(member)
        except Exception:
            self._malformed("undecodable", exc_info=True)
            return None
        if not isinstance(message, dict):
            self._malformed("not_a_dict")
            return None
        if "__asgi_channel__" not in message:
            return message, None
        target = message.pop("__asgi_channel__")
        # A '!' channel name, or the list of them stock group_send packs into one message.
        if isinstance(target, str) or (
            isinstance(target, list) and target and all(isinstance(c, str) for c in target)
        ):
            return message, target
        self._malformed("bad_channel")
        return None

    def decode_pairs(
        self, pairs: list[list[Any]], cutoff: float
    ) -> list[tuple[dict[str, Any], Any]]:
        """(message, tag) of each (member, score) pair; expired and malformed ones counted."""
        decode = self.decode_member
        decoded = []
        expired = 0
        for member, score in pairs:
            if float(score) < cutoff:
                expired += 1
                continue
            item = decode(member)
            if item is not None:
                decoded.append(item)
        if expired:
            self._stats.drop("expired", expired)
        return decoded

    def _malformed(self, reason: str, exc_info: bool = False) -> None:
        self._stats.drop(reason)
        if self._stats.should_log(reason):
            logger.warning(
                "dropped a malformed message (%s; logged once a minute, counted in stats)",
                reason,
                exc_info=exc_info,
            )
