"""Django system checks: ``manage.py check`` (and so ``runworker``) refuses a broken setup.

Ids: ``servicebus.E001`` app order, ``E002``/``E003`` unknown key / wrong type or value in
``SERVICEBUS``, ``E004``/``E005`` the same in ``SERVICEBUS_OUTBOX``, ``E006`` a channel
layer alias that does not exist, ``E007`` a source/replica model without a topic,
``W001`` the in-memory layer with DEBUG off, ``W002`` SQLite without IMMEDIATE
transactions where the outbox is installed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

TAG = "servicebus"
IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"
SQLITE_ENGINE = "django.db.backends.sqlite3"
# Numeric settings without a rule of their own where 0 means something ("do not wait").
ZERO_ALLOWED = frozenset({"DRAIN_TIMEOUT"})


def _bad_number(key: str, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not math.isfinite(value) or value < 0 or (value == 0 and key not in ZERO_ALLOWED)


def settings_problems(
    cls: type[Any], raw: Any, name: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """(unknown keys, [(key, problem)]) of ``raw`` against the settings dataclass ``cls``.

    Types and value rules come from the settings loader (``servicebus.conf``); a numeric
    field without a rule there must still be finite and positive.
    """
    from servicebus import conf

    if raw is None:
        return [], []
    if not isinstance(raw, Mapping):
        return [], [("", f"{name} must be a dict, not {type(raw).__name__}")]
    specs = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in raw if k not in specs)
    problems: list[tuple[str, str]] = []
    for key in sorted(k for k in raw if k in specs):
        found = conf.settings_problems(cls, name, {key: raw[key]})
        if found:
            problems += [(key, text) for text in found]
        elif "check" not in specs[key].metadata and _bad_number(key, raw[key]):
            floor = ">= 0" if key in ZERO_ALLOWED else "> 0"
            problems.append((key, f"{name}[{key!r}] = {raw[key]!r} must be finite and {floor}"))
    return unknown, problems


def _settings_messages(
    cls: type[Any], setting: str, unknown_id: str, value_id: str
) -> list[CheckMessage]:
    raw = getattr(settings, setting, None)
    unknown, problems = settings_problems(cls, raw, setting)
    known = ", ".join(sorted(f.name for f in dataclasses.fields(cls)))
    messages: list[CheckMessage] = []
    for key in unknown:
        messages.append(
            Error(
                f"unknown {setting} key {key!r}",
                hint=f"check the spelling; known keys: {known}",
                id=unknown_id,
            )
        )
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for key, problem in problems:
        hint = (
            f"fix {setting}[{key!r}]; the default is {defaults[key]!r}"
            if key
            else f"make settings.{setting} a dict"
        )
        messages.append(Error(problem, hint=hint, id=value_id))
    return messages


def _installed() -> list[str]:
    return list(getattr(settings, "INSTALLED_APPS", []))


def _app_index(apps: Sequence[str], name: str) -> int | None:
    for i, entry in enumerate(apps):
        if entry == name or entry.startswith(name + ".apps."):
            return i
    return None


@register(TAG)
def check_app_order(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: ``servicebus`` listed after ``channels``: channels' own runworker would win."""
    apps = _installed()
    ours, theirs = _app_index(apps, "servicebus"), _app_index(apps, "channels")
    if ours is not None and theirs is not None and theirs < ours:
        return [
            Error(
                "'channels' is listed before 'servicebus' in INSTALLED_APPS: `manage.py "
                "runworker` runs channels' single-message worker, not servicebus's",
                hint="move 'servicebus' above 'channels' in INSTALLED_APPS",
                id="servicebus.E001",
            )
        ]
    return []


@register(TAG)
def check_settings(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E002-E005: unknown keys and wrong types/values in SERVICEBUS and SERVICEBUS_OUTBOX."""
    from servicebus.conf import Settings

    messages = _settings_messages(Settings, "SERVICEBUS", "servicebus.E002", "servicebus.E003")
    if hasattr(settings, "SERVICEBUS_OUTBOX") or "servicebus.outbox" in _installed():
        # Import only the settings module: the outbox app may not be installed.
        from servicebus.outbox.settings import OutboxSettings

        messages += _settings_messages(
            OutboxSettings, "SERVICEBUS_OUTBOX", "servicebus.E004", "servicebus.E005"
        )
    return messages


def _layer_alias() -> Any:
    raw = getattr(settings, "SERVICEBUS", None)
    if isinstance(raw, Mapping) and "CHANNEL_LAYER" in raw:
        return raw["CHANNEL_LAYER"]
    from servicebus.conf import Settings

    return Settings.CHANNEL_LAYER


@register(TAG)
def check_channel_layer(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E006: the layer alias is not in CHANNEL_LAYERS; W001: in-memory layer with DEBUG off."""
    alias = _layer_alias()
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not isinstance(alias, str) or alias not in layers:
        return [
            Error(
                f"channel layer {alias!r} (SERVICEBUS['CHANNEL_LAYER']) is not in CHANNEL_LAYERS",
                hint=f"define CHANNEL_LAYERS[{alias!r}] or set SERVICEBUS['CHANNEL_LAYER'] "
                f"to one of {sorted(layers)}",
                id="servicebus.E006",
            )
        ]
    backend = layers[alias].get("BACKEND") if isinstance(layers[alias], Mapping) else None
    if backend == IN_MEMORY_LAYER and not settings.DEBUG:
        return [
            Warning(
                f"channel layer {alias!r} is the in-memory layer and DEBUG is off: "
                "services in other processes can never reach this one",
                hint="use servicebus.layers.RedisChannelLayer outside development and tests",
                id="servicebus.W001",
            )
        ]
    return []


@register(TAG, "database")
def check_sqlite_immediate(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W002: the outbox writes from handler threads; SQLite needs IMMEDIATE transactions."""
    if "servicebus.outbox" not in _installed():
        return []
    messages: list[CheckMessage] = []
    for alias, db in (getattr(settings, "DATABASES", None) or {}).items():
        if db.get("ENGINE") != SQLITE_ENGINE:
            continue
        mode = str((db.get("OPTIONS") or {}).get("transaction_mode") or "DEFERRED")
        if mode.upper() != "IMMEDIATE":
            messages.append(
                Warning(
                    f"database {alias!r} is SQLite with {mode} transactions: concurrent "
                    "outbox writes fail with 'database is locked' on the lock upgrade",
                    hint=f"set DATABASES[{alias!r}]['OPTIONS']['transaction_mode'] = "
                    "'IMMEDIATE' (servicebus.environ.database_from_url does)",
                    id="servicebus.W002",
                )
            )
    return messages


def models_without_topic(models: Iterable[type[Any]]) -> list[CheckMessage]:
    """E007 for each model whose inner ``Replication`` names no topic."""
    return [
        Error(
            f"{model._meta.label} replicates but names no topic",
            hint=f'add `class Replication: topic = "<service>.<model>"` to {model.__name__}',
            obj=model,
            id="servicebus.E007",
        )
        for model in models
        if not getattr(getattr(model, "Replication", None), "topic", "")
    ]


@register(TAG, "models")
def check_replication_topics(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E007: a SourceModel or ReplicaModel without ``Replication.topic``."""
    if "servicebus.outbox" not in _installed():
        return []
    from servicebus.outbox.replication import replica_models, source_models

    return models_without_topic([*source_models(), *replica_models()])
