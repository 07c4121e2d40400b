"""Telemetry: metrics, logs, tracing, the instance registry and call records.

Everything here is middleware around dispatch and call (``servicebus.hooks``), never
inside the transport. ``default_hooks()`` lists what a process installs by default.
"""

from __future__ import annotations

from typing import Any


def default_hooks() -> list[Any]:
    """The hooks a servicebus process installs unless told otherwise (cheap, always safe)."""
    from servicebus.telemetry import prometheus, tracing
    from servicebus.telemetry.logs import access_log, drop_log
    from servicebus.telemetry.records import recorder
    from servicebus.telemetry.stats import stats

    hooks: list[Any] = [stats, access_log, drop_log, recorder]
    # Optional extras: each is None when its library is missing (or TRACING is off).
    hooks += [h for h in (prometheus.hook(), tracing.hook()) if h is not None]
    return hooks
