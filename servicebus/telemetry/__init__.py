"""Telemetry: metrics, logs, tracing, the instance registry and call records.

Everything here is middleware around dispatch and call (``servicebus.hooks``), never
inside the transport. ``default_hooks()`` lists what a process installs by default.
"""

from __future__ import annotations

from typing import Any


def default_hooks() -> list[Any]:
    """The hooks a servicebus process installs unless told otherwise (cheap, always safe)."""
    from servicebus.conf import get_settings
    from servicebus.telemetry import prometheus, tracing
    from servicebus.telemetry.logs import access_log, drop_log
    from servicebus.telemetry.records import recorder
    from servicebus.telemetry.stats import stats

    hooks: list[Any] = [stats, access_log, drop_log, recorder]
    if get_settings().METRICS:
        # Prometheus reads the stats hook at scrape time: no hook of its own per call.
        prometheus.enable()
    tracer = tracing.hook()  # None when opentelemetry-api is missing or TRACING is off
    if tracer is not None:
        hooks.append(tracer)
    return hooks


_installed: list[Any] = []


def install_defaults() -> None:
    """Install the default hooks and the ``_ping``/``_info``/``_stats`` bodies (idempotent).

    ``SERVICEBUS["TELEMETRY"] = False`` installs the built-in methods only.
    """
    from servicebus import hooks
    from servicebus.conf import SettingsError, get_settings
    from servicebus.telemetry.builtins import BUILTINS

    hooks.builtin_methods.update(BUILTINS)
    try:
        settings = get_settings()
    except SettingsError:
        # Broken SERVICEBUS settings: the system checks report them (manage.py check,
        # runworker) instead of a traceback from app loading.
        return
    if _installed or not settings.TELEMETRY:
        return
    for hook in default_hooks():
        hooks.install(hook)
        _installed.append(hook)


def uninstall_defaults() -> None:
    """Remove the hooks ``install_defaults`` installed (tests, benchmarks)."""
    from servicebus import hooks

    for hook in _installed:
        hooks.uninstall(hook)
    _installed.clear()
