"""Call records: a compact summary of each handled call in a capped Redis stream.

A record is (correlation ID, parent request id, request id, service, method, caller,
start, duration, code, kind, instance): never a body, never a header value. The hook only
appends to a bounded in-memory buffer (a call never waits on, or fails because of,
recording); a flusher task writes the buffer every ``FLUSH_INTERVAL`` in one pipelined
round trip, ``CHUNK`` records per stream entry, the stream capped with XADD MAXLEN ~.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import deque
from typing import Any

import msgpack

from servicebus.telemetry import labels
from servicebus.telemetry import store as keys
from servicebus.telemetry.identity import instance_id
from servicebus.telemetry.store import Store
from servicebus.telemetry.types import CallInfo

logger = logging.getLogger("servicebus.telemetry")

FIELDS = (
    "correlation_id",
    "parent_id",
    "request_id",
    "service",
    "method",
    "caller",
    "start",
    "duration_ms",
    "code",
    "kind",
    "instance",
)
CHUNK = 50  # records per stream entry
FLUSH_INTERVAL = 0.1
BUFFER = 20_000  # records held while Redis is slow or down; older ones are dropped
# Failures that never reach a server (so no server record exists): the caller records them.
CLIENT_SIDE = frozenset({"timeout", "backpressure", "unavailable"})


def keep_trace(correlation_id: str, sample: float) -> bool:
    """Sampling by correlation ID: every call of one trace is kept or skipped together."""
    return sample >= 1.0 or (zlib.crc32(correlation_id.encode()) % 10_000) < sample * 10_000


class CallRecorder:
    """Hook: buffers call records; ``flush(store)`` writes them (see the module doc)."""

    def __init__(self) -> None:
        self.active = False  # set by the worker runtime that flushes; else nothing buffers
        self.sample = 1.0
        self.maxlen = 2000
        self.buffer: deque[tuple[Any, ...]] = deque(maxlen=BUFFER)
        self.written = 0
        self.lost = 0
        self._failing = False

    def configure(self, *, active: bool, sample: float = 1.0, maxlen: int = 2000) -> None:
        """Turn recording on or off (the worker runtime does, from SERVICEBUS settings)."""
        self.active, self.sample, self.maxlen = active, sample, maxlen

    def _append(self, info: CallInfo, kind: str) -> None:
        # Raw values only: rounding, truncation and labels happen when the flusher packs
        # them (off the call's path).
        self.buffer.append(
            (
                info.correlation_id,
                info.parent_id,
                info.request_id,
                info.service,
                info.method,
                info.caller,
                info.started,
                info.duration,
                info.code,
                kind,
            )
        )

    @staticmethod
    def _row(raw: tuple[Any, ...]) -> tuple[Any, ...]:
        """A buffered call as the record written to the stream (see FIELDS)."""
        cid, parent, rid, service, method, caller, started, duration, code, kind = raw
        cut = labels.MAX_LENGTH
        if code in labels.NOT_A_METHOD:
            # An unknown method is `_unknown`; other names are truncated, not folded: the
            # stream is capped anyway, and a trace should show the real names.
            method = labels.UNKNOWN
        elif len(method) > cut:
            method = method[:cut]
        if not caller:
            caller = ""
        elif len(caller) > cut:
            caller = caller[:cut]
        if len(code) > cut:
            code = code[:cut]
        # (round() would cost several times the rest: it formats the float as a string.)
        duration_ms = int(duration * 1_000_000 + 0.5) / 1000
        return (cid, parent, rid, service, method, caller, started, duration_ms, code, kind)

    def server_end(self, info: CallInfo) -> None:
        """Record a handled request (sampled by trace when ok; failures always)."""
        if self.active and (
            self.sample >= 1.0 or info.code != "ok" or keep_trace(info.correlation_id, self.sample)
        ):
            self._append(info, "server")

    def client_end(self, info: CallInfo) -> None:
        """Record a call that failed before any server handled it (timeout, backpressure...)."""
        if self.active and info.code in CLIENT_SIDE:
            self._append(info, "client")

    async def flush(self, store: Store) -> int:
        """Write the buffered records; return how many (0 and counted lost on failure)."""
        items: list[tuple[Any, ...]] = []
        buffer, row = self.buffer, self._row
        while buffer:
            items.append(row(buffer.popleft()))
        if not items:
            return 0
        stream = keys.key(store, keys.CALLS)
        me = instance_id()
        # msgpack: several times cheaper than JSON for these small tuples.
        commands = [
            ["XADD", stream, "MAXLEN", "~", self.maxlen, "*", "i", me, "r",
             msgpack.packb(items[i : i + CHUNK])]
            for i in range(0, len(items), CHUNK)
        ]  # fmt: skip
        try:
            await store.pipeline(stream, commands)
        except asyncio.CancelledError:
            self.lost += len(items)
            raise
        except Exception as exc:
            self.lost += len(items)
            if not self._failing:
                logger.warning("call records not written (%r); dropping them meanwhile", exc)
            self._failing = True
            return 0
        self._failing = False
        self.written += len(items)
        return len(items)

    async def run(self, store: Store) -> None:
        """Flush every FLUSH_INTERVAL until cancelled."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush(store)


def decode_entry(fields: dict[Any, Any]) -> list[dict[str, Any]]:
    """The records of one stream entry as dicts (skips anything malformed)."""
    raw = fields.get(b"r", fields.get("r"))
    instance = fields.get(b"i", fields.get("i"))
    if isinstance(instance, bytes):
        instance = instance.decode(errors="replace")
    try:
        rows = msgpack.unpackb(raw or b"", strict_map_key=True)
    except (TypeError, ValueError, msgpack.UnpackException):
        return []
    if not isinstance(rows, list):
        return []
    return [
        dict(zip(FIELDS, [*row, instance], strict=True))
        for row in rows
        if isinstance(row, list) and len(row) == len(FIELDS) - 1
    ]


recorder = CallRecorder()
