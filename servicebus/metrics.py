"""Process-wide counters for what the bus drops, expires or refuses (never silently).

Names (documented in docs/protocol.md): ``requests_handled``, ``requests_failed``,
``calls_backpressure``, ``calls_timeout``, ``reply_listener_restarts``, ``hooks_failed``,
and one ``<where>_<reason>`` per drop reported through ``servicebus.hooks.dropped``
(``requests_expired``, ``requests_malformed``, ``replies_late``, ``layer_expired``, ...).
"""

from __future__ import annotations

import threading
from collections import Counter


class Metrics:
    """Thread-safe named counters; ``snapshot()`` gives a plain dict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def inc(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name``."""
        with self._lock:
            self._counts[name] += amount

    def get(self, name: str) -> int:
        """Current value of ``name`` (0 if never counted)."""
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        """Zero every counter (tests)."""
        with self._lock:
            self._counts.clear()


metrics = Metrics()
