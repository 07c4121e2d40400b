"""``Request``: what a handler receives."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Request:
    """One call as a handler sees it; nested calls made while handling it inherit from it."""

    method: str
    body: Any
    correlation_id: str
    deadline: float
    headers: Mapping[str, str] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    caller: str = ""
    id: str = ""
    service: str = ""
    reply_to: str | None = None
    # The id of the request whose handler made this call (None at an edge): for traces.
    parent_id: str | None = None

    def remaining(self) -> float:
        """Seconds left before the caller gives up (may be negative)."""
        return self.deadline - time.time()

    def has_flag(self, name: str) -> bool:
        """True when the feature flag ``name`` is on for this request."""
        return name in self.flags
