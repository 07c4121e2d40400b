"""Bounded label values: odd or endless method names and codes never become new series."""

from __future__ import annotations

import re
import threading

UNKNOWN = "_unknown"
OTHER = "_other"
MAX_LENGTH = 64
# Distinct (service, method) and per-method codes kept before folding into UNKNOWN/OTHER.
MAX_METHODS = 500
MAX_CODES = 100
_SAFE = re.compile(r"^[A-Za-z0-9_.:/-]{1,129}$")  # service/method, each <= 64
# Codes a caller may see for a method the callee does not have: never a new label.
NOT_A_METHOD = frozenset({"method_not_found"})


class LabelSet:
    """Admits up to ``limit`` distinct values; after that every new value maps to ``fallback``."""

    def __init__(self, limit: int, fallback: str) -> None:
        self.limit = limit
        self.fallback = fallback
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, value: str) -> str:
        """``value`` itself when known or room is left and it looks sane; else the fallback."""
        if value in self._seen:
            return value
        if not _SAFE.match(value):
            return self.fallback
        with self._lock:
            if len(self._seen) >= self.limit:
                return self.fallback
            self._seen.add(value)
        return value

    def clear(self) -> None:
        """Forget every admitted value (tests)."""
        with self._lock:
            self._seen.clear()
            _method_labels.clear()


methods = LabelSet(MAX_METHODS, UNKNOWN)
codes = LabelSet(MAX_CODES, OTHER)
reasons = LabelSet(MAX_CODES, OTHER)


# (service, method) -> label, for the pairs already decided: the hot path is one lookup.
_method_labels: dict[tuple[str, str], str] = {}


def method_label(service: str, method: str, code: str) -> str:
    """The method as a label: ``_unknown`` for a method that was not found or is odd."""
    if code in NOT_A_METHOD:
        return UNKNOWN
    label = _method_labels.get((service, method))
    if label is None:
        admitted = len(method) <= MAX_LENGTH and methods.admit(f"{service}/{method}") != UNKNOWN
        label = method if admitted else UNKNOWN
        if admitted or len(_method_labels) < MAX_METHODS:  # bounded like the label set
            _method_labels[(service, method)] = label
    return label


def code_label(code: str) -> str:
    """The outcome code as a label (``ok``, an error code, or ``_other``)."""
    return codes.admit(code)


def reason_label(reason: str) -> str:
    """A drop reason as a label (``_other`` past the cap)."""
    return reasons.admit(reason)
