"""Hand-made CallInfo objects for hook unit tests (the shape of servicebus.hooks.CallInfo)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Info:
    """A CallInfo stand-in with sensible defaults."""

    kind: str = "server"
    service: str = "inventory"
    method: str = "allocate"
    channel: str = "inventory.request"
    caller: str = "orders"
    correlation_id: str = "cid-1"
    request_id: str = "rid-1"
    parent_id: str | None = None
    started: float = field(default_factory=time.time)
    duration: float = 0.002
    code: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
