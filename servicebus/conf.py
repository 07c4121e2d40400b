"""Settings, defaults and names in one place.

Every value can be overridden in Django settings through the ``SERVICEBUS`` dict, e.g.
``SERVICEBUS = {"SERVICE_NAME": "orders", "DEFAULT_TIMEOUT": 2.0}``. ``load_settings``
is the one loader (also for ``SERVICEBUS_OUTBOX``): unknown keys, wrong types and bad
values raise ``SettingsError``; ``settings_problems`` lists them for system checks.
"""

from __future__ import annotations

import functools
import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

# Wire contract: bump only with a documented migration (docs/protocol.md).
PROTOCOL_VERSION = 1
REQUEST_TYPE = "servicebus.request"
REPLY_TYPE = "servicebus.reply"

# Channel names.
REQUEST_CHANNEL_SUFFIX = ".request"
REQUEST_CHANNEL_TEMPLATE = "{service}" + REQUEST_CHANNEL_SUFFIX
REPLY_CHANNEL_PREFIX = "servicebus.reply"

# The longest timeout a call may ask for (seconds): beyond it is a mistake, not a wait.
MAX_TIMEOUT = 86400.0

T = TypeVar("T")


class SettingsError(ImproperlyConfigured, ValueError):
    """A ``SERVICEBUS``/``SERVICEBUS_OUTBOX`` setting is unknown, of the wrong type or invalid."""


# ---- value checks, named in a field's metadata: field(default=..., metadata=check(...)) ----


def check(test: Callable[[Any], bool], rule: str, env: str | None = None) -> dict[str, Any]:
    """Field metadata: ``test(value)`` must hold (``rule`` says how); ``env``: fallback var."""
    return {"check": test, "rule": rule, "env": env}


def positive(value: float) -> bool:
    """Finite and above 0."""
    return math.isfinite(value) and value > 0


def non_negative(value: float) -> bool:
    """Finite and at least 0."""
    return math.isfinite(value) and value >= 0


def timeout_range(value: float) -> bool:
    """A usable call timeout: finite, above 0, at most MAX_TIMEOUT."""
    return positive(value) and value <= MAX_TIMEOUT


def strong_keys(keys: tuple[str, ...]) -> bool:
    """Every key at least 16 characters (a short key is guessable)."""
    return all(len(key) >= 16 for key in keys)


def env_only(var: str) -> dict[str, Any]:
    """Field metadata: no value check, but ``var`` from the environment when not set."""
    return {"env": var}


@dataclass(frozen=True)
class Settings:
    """Effective servicebus settings (defaults overridden by ``settings.SERVICEBUS``)."""

    # The caller name sent with requests (env SERVICEBUS_SERVICE_NAME when not set).
    SERVICE_NAME: str = field(default="", metadata=env_only("SERVICEBUS_SERVICE_NAME"))
    # Alias in CHANNEL_LAYERS.
    CHANNEL_LAYER: str = "default"
    DEFAULT_TIMEOUT: float = field(
        default=5.0, metadata=check(timeout_range, f"finite, > 0 and <= {MAX_TIMEOUT:g}")
    )
    MAX_BODY_SIZE: int = field(default=8 * 1024 * 1024, metadata=check(positive, "> 0"))
    WORKER_CONCURRENCY: int = field(default=64, metadata=check(positive, ">= 1"))
    # Most messages one receive takes: smaller batches let caller, worker and Redis work
    # on different batches at once instead of passing one burst around; larger ones cost
    # less per message (32: benchmarks.cpu, 64 and 256 in flight, docs/benchmarks.md).
    WORKER_BATCH: int = field(default=32, metadata=check(positive, ">= 1"))
    DRAIN_TIMEOUT: float = field(default=30.0, metadata=check(non_negative, ">= 0"))
    # Caps how long a blocking receive waits before it polls again (shutdown latency).
    RECEIVE_POLL: float = field(default=1.0, metadata=check(positive, "> 0"))
    # Dotted paths of hook objects or classes (servicebus.hooks), installed at first use.
    HOOKS: tuple[str, ...] = ()
    # HMAC keys for signed envelopes (servicebus.signing): the first signs, any verifies.
    # Empty: nothing is signed or checked. Env SERVICEBUS_SIGNING_KEYS via servicebus.environ.
    SIGNING_KEYS: tuple[str, ...] = field(
        default=(), metadata=check(strong_keys, "a list of keys of at least 16 characters")
    )
    # Telemetry (servicebus.telemetry, docs/operations.md): install the default hooks
    # (stats, access log, drop warnings, call records, tracing) when the app is ready.
    TELEMETRY: bool = True
    # Prometheus series (read from the stats hook at scrape time), with prometheus_client.
    METRICS: bool = True
    # OpenTelemetry spans and W3C trace context, when opentelemetry-api is installed.
    TRACING: bool = True
    # Seconds between a worker's instance-registry heartbeats; an instance vanishes after
    # three missed beats.
    HEARTBEAT_INTERVAL: float = field(default=5.0, metadata=check(positive, "> 0"))
    # Record a compact summary of each handled call (no bodies, no header values) in a
    # capped Redis stream: traces and failures for servicebus_status and the dashboard.
    RECORD_CALLS: bool = True
    # Share of successful traces recorded (by correlation ID); failures are always kept.
    RECORD_SAMPLE: float = field(
        default=1.0, metadata=check(lambda v: 0 <= v <= 1, "between 0 and 1")
    )
    # Entries the call stream keeps (XADD MAXLEN ~); one entry holds up to 50 call records.
    RECORD_MAXLEN: int = field(default=2000, metadata=check(positive, ">= 1"))


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if origin is tuple:
        # Written as a list or tuple in settings; every item of the one item type.
        (item, *_) = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and all(_type_ok(v, item) for v in value)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    return True  # a type this loader does not know: accept


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    return getattr(hint, "__name__", str(hint))


def settings_problems(cls: type[Any], name: str, raw: Mapping[str, Any]) -> list[str]:
    """Everything wrong with ``raw`` as ``name`` (unknown keys, types, values); [] if fine."""
    if not isinstance(raw, Mapping):
        return [f"{name} must be a dict, got {type(raw).__name__}"]
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    problems = []
    unknown = sorted(set(raw) - set(known))
    if unknown:
        problems.append(f"unknown {name} setting(s): {unknown}; known: {sorted(known)}")
    for key, value in raw.items():
        spec = known.get(key)
        if spec is None:
            continue
        hint = hints[key]
        if not _type_ok(value, hint):
            problems.append(
                f"{name}[{key!r}] must be {_type_name(hint)}, got {type(value).__name__} {value!r}"
            )
            continue
        test = spec.metadata.get("check")
        if test is not None and not test(value):
            problems.append(f"{name}[{key!r}] must be {spec.metadata['rule']}, got {value!r}")
    return problems


def load_settings(
    cls: type[T], name: str, env: Mapping[str, str] | None = None, **overrides: Any
) -> T:
    """``cls`` (a frozen dataclass) from Django's ``settings.<name>`` over its defaults.

    A field whose metadata names an ``env`` variable takes it when the setting is not set;
    ``overrides`` win over both. Raises SettingsError listing every problem.
    """
    assert is_dataclass(cls)
    raw: Any = {}
    from django.conf import settings as dj

    if dj.configured:
        raw = getattr(dj, name, None) or {}
    problems = settings_problems(cls, name, raw)
    if problems:
        raise SettingsError("; ".join(problems))
    values = dict(raw)
    environ = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    for spec in fields(cls):
        var = spec.metadata.get("env")
        if var and not values.get(spec.name) and environ.get(var):
            values[spec.name] = environ[var]
        if typing.get_origin(hints[spec.name]) is tuple and spec.name in values:
            values[spec.name] = tuple(values[spec.name])
        if hints[spec.name] is float and spec.name in values:
            values[spec.name] = float(values[spec.name])
    values.update(overrides)
    return cls(**values)


@functools.cache
def get_settings() -> Settings:
    """The effective ``SERVICEBUS`` settings (cached; reset when Django settings change).

    Loading them also installs the hooks named in ``HOOKS``.
    """
    loaded = load_settings(Settings, "SERVICEBUS")
    from servicebus import hooks  # hooks has no settings of its own: no import cycle

    hooks.sync_with_settings(loaded.HOOKS)
    return loaded


def request_channel(service: str) -> str:
    """The channel a service listens on by default."""
    return REQUEST_CHANNEL_TEMPLATE.format(service=service)


def service_of(channel: str) -> str:
    """The service name of a request channel (the channel itself when not a default name)."""
    return channel.removesuffix(REQUEST_CHANNEL_SUFFIX) or channel


def _reset_on_setting_changed(**kwargs: Any) -> None:
    # override_settings in tests must take effect at once.
    if kwargs.get("setting") == "SERVICEBUS":
        get_settings.cache_clear()


setting_changed.connect(_reset_on_setting_changed)

__all__ = [
    "Settings",
    "SettingsError",
    "get_settings",
    "load_settings",
    "settings_problems",
]
