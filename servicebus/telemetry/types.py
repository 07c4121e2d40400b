"""The shape telemetry hooks read (``servicebus.hooks.CallInfo``), as a typing Protocol."""

from __future__ import annotations

from typing import Any, Protocol


class CallInfo(Protocol):
    """One call as hooks see it: client side (``kind="client"``) or server side."""

    kind: str
    service: str
    method: str
    channel: str
    caller: str
    correlation_id: str
    request_id: str
    parent_id: str | None
    started: float
    duration: float
    code: str
    headers: dict[str, str]
    state: dict[str, Any]
