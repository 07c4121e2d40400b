"""Replication wiring: find source/replica models, register handlers, re-sync from the source."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.db import models, router, transaction

from servicebus.outbox.codec import Event
from servicebus.outbox.constants import RESYNC_TOPIC, TARGET_GROUP_HEADER
from servicebus.outbox.errors import ReplicationConfigError
from servicebus.outbox.models import Tombstone
from servicebus.outbox.publisher import publish_event
from servicebus.outbox.registry import subscriber
from servicebus.outbox.replica import ReplicaModel
from servicebus.outbox.source import SourceModel, replication_topic


def source_models() -> list[type[models.Model]]:
    """Every installed concrete ``SourceModel``."""
    return [m for m in apps.get_models() if issubclass(m, SourceModel)]


def replica_models() -> list[type[models.Model]]:
    """Every installed concrete ``ReplicaModel``."""
    return [m for m in apps.get_models() if issubclass(m, ReplicaModel)]


def get_model(label: str, kind: str) -> type[Any]:
    """The installed source or replica model named ``app_label.ModelName``."""
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError) as exc:
        raise ReplicationConfigError(f"no model {label!r}: give it as app_label.ModelName") from exc
    wanted = source_models() if kind == "source" else replica_models()
    if model not in wanted:
        raise ReplicationConfigError(f"{label} is not a {kind} model (Source/ReplicaModel)")
    return model


def _replica_handler(model: type[Any]) -> Any:
    def apply(events: list[Event]) -> None:
        items = [
            (e.key, e.payload["op"], int(e.payload.get("revision") or 0), e.payload.get("data"))
            for e in events
        ]
        model.apply_replica_events(items, using=events[0].database)

    apply.__name__ = f"apply_{model._meta.label_lower.replace('.', '_')}"
    return apply


def _resync_handler(event: Event) -> None:
    """A replica asked (servicebus_diff) to republish keys of a topic this service owns."""
    p = event.payload
    for model in source_models():
        if replication_topic(model) == p.get("topic"):
            resync(
                model,
                keys=list(p.get("keys") or []),
                replica_group=p.get("replica_group"),
                using=event.database,
            )


_registered: dict[str, Any] = {}


def register_replication_handlers() -> None:
    """Subscribe each replica model to its topic, and the resync handler if we own sources."""
    for model in replica_models():
        label = model._meta.label_lower
        if label not in _registered:
            handler = _replica_handler(model)
            _registered[label] = subscriber(replication_topic(model), batch=True)(handler)
    if source_models() and RESYNC_TOPIC not in _registered:
        _registered[RESYNC_TOPIC] = subscriber(RESYNC_TOPIC)(_resync_handler)


def resync(
    model: type[Any],
    *,
    filters: dict[str, Any] | None = None,
    keys: Iterable[str] | None = None,
    replica_group: str | None = None,
    using: str | None = None,
    chunk: int = 500,
) -> int:
    """Republish the current state of source rows through the outbox; return the count.

    With ``keys``, keys that no longer exist are republished as their delete (from the
    tombstone) or as ``absent``; with ``replica_group`` only that group applies them.
    """
    topic = replication_topic(model)
    using = using or router.db_for_write(model)
    headers = {TARGET_GROUP_HEADER: replica_group} if replica_group else {}
    qs = model._base_manager.using(using).order_by("pk")
    if filters:
        qs = qs.filter(**filters)
    wanted = None if keys is None else [str(k) for k in keys]
    if wanted is not None:
        qs = qs.filter(pk__in=[model._meta.pk.to_python(k) for k in wanted])
    count = 0
    seen: set[str] = set()
    last_pk: Any = None
    while True:  # keyset pagination: bounded chunks, each in its own transaction
        page = qs if last_pk is None else qs.filter(pk__gt=last_pk)
        rows = list(page[:chunk])
        if not rows:
            break
        with transaction.atomic(using=using):
            for row in rows:
                key = row.replication_key()
                publish_event(
                    topic, row.replication_payload(), key=key, headers=headers, using=using
                )
                seen.add(key)
        count += len(rows)
        last_pk = rows[-1].pk
    if wanted is not None:
        label = model._meta.label_lower
        missing = [k for k in wanted if k not in seen]
        tombs = dict(
            Tombstone.objects.using(using)
            .filter(model=label, key__in=missing)
            .values_list("key", "revision")
        )
        with transaction.atomic(using=using):
            for key in missing:
                rev = tombs.get(key)
                op = "delete" if rev is not None else "absent"
                payload = {"op": op, "revision": rev or 0, "model": label, "data": None}
                publish_event(topic, payload, key=key, headers=headers, using=using)
                count += 1
    return count
