"""Logs: one JSON object per line, one access line per handled request, drops never silent.

``JsonFormatter`` is what ``servicebus.environ.logging_config(service, json=True)`` uses;
``access_log`` and ``drop_log`` are hooks (``servicebus.hooks``) installed by default.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from servicebus.context import current_correlation_id, current_request
from servicebus.telemetry.types import CallInfo

access_logger = logging.getLogger("servicebus.access")
drop_logger = logging.getLogger("servicebus.drops")

# Fields a record may carry (``extra=``) that become top-level JSON keys.
FIELDS = ("correlation_id", "service", "method", "caller", "duration_ms", "code")
# The LogRecord's own attributes: anything else passed with extra= is a field too.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the call's fields."""

    def __init__(self, service: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (exceptions as a ``exc`` string field)."""
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = current_request()
        cid = getattr(record, "correlation_id", None)
        if cid in (None, "-"):
            cid = current_correlation_id()
        out["correlation_id"] = cid
        out["service"] = getattr(record, "service", None) or self.service or None
        if request is not None:  # inside a handler: say which call this line belongs to
            out["method"] = request.method
            out["caller"] = request.caller or None
        for key, value in vars(record).items():
            if key in FIELDS:
                if value not in (None, "-"):
                    out[key] = value
            elif key not in _RESERVED and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class AccessLog:
    """Hook: one INFO line on ``servicebus.access`` per handled request."""

    def server_end(self, info: CallInfo) -> None:
        """Log the request's service, method, caller, duration and outcome code."""
        if not access_logger.isEnabledFor(logging.INFO):
            return  # the common case in benchmarks: no record built at all
        duration_ms = round(info.duration * 1000, 3)
        access_logger.info(
            "%s.%s %s %.1fms from %s",
            info.service,
            info.method,
            info.code,
            duration_ms,
            info.caller or "?",
            extra={
                "correlation_id": info.correlation_id,
                "service": info.service,
                "method": info.method,
                "caller": info.caller,
                "duration_ms": duration_ms,
                "code": info.code,
            },
        )


class DropLog:
    """Hook: a WARNING for every drop reason, at most one line per reason per ``interval``.

    Drops between two lines are summed into the next line; ``flush()`` (the heartbeat
    calls it) writes what is pending, so a last burst is not left unsaid.
    """

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], int] = {}
        self._last: dict[tuple[str, str], float] = {}

    def dropped(self, reason: str, where: str, count: int) -> None:
        """Count ``count`` drops; log now if this reason was quiet for ``interval``."""
        key = (reason, where)
        now = time.monotonic()
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + count
            if now - self._last.get(key, -self.interval) < self.interval:
                return
            self._last[key] = now
            total = self._pending.pop(key)
        self._log(reason, where, total)

    def flush(self) -> None:
        """Log every reason with drops not yet logged."""
        with self._lock:
            pending, self._pending = self._pending, {}
            now = time.monotonic()
            for key in pending:
                self._last[key] = now
        for (reason, where), total in sorted(pending.items()):
            self._log(reason, where, total)

    def _log(self, reason: str, where: str, total: int) -> None:
        drop_logger.warning(
            "dropped %d message(s) in %s: %s (rate-limited: at most one line per %ss per reason)",
            total,
            where,
            reason,
            int(self.interval),
            extra={"reason": reason, "where": where, "count": total},
        )


access_log = AccessLog()
drop_log = DropLog()
