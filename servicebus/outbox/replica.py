"""``ReplicaModel``: a read-only copy that applies source events in revision order."""

from __future__ import annotations

import enum
import logging
from typing import Any

from django.db import models, router, transaction
from django.utils import timezone

logger = logging.getLogger("servicebus.outbox.replica")

REPLICA_BOOKKEEPING = frozenset({"revision", "replicated_at"})


class Outcome(enum.Enum):
    """What applying one replication event did."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # same revision as the replica: already applied
    STALE = "stale"  # older than the replica (or its tombstone): ignored
    GAP = "gap"  # applied, but revisions in between were never seen


class ReplicaModel(models.Model):
    """Mixin for a read-only copy of another service's ``SourceModel``.

    The primary key is the source's key. Declare the topic with an inner
    ``class Replication: topic = "service.model"``. Never write replicas by hand:
    ``servicebus_diff`` repairs what differs from the source.
    """

    revision: models.PositiveBigIntegerField[Any, Any] = models.PositiveBigIntegerField(default=0)
    replicated_at: models.DateTimeField[Any, Any] = models.DateTimeField(null=True, blank=True)

    class Replication:
        topic = ""

    class Meta:
        abstract = True

    @classmethod
    def from_replica(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Field values from the source's ``to_replica()`` data (unknown keys ignored)."""
        values: dict[str, Any] = {}
        for f in cls._meta.concrete_fields:
            if f.attname in REPLICA_BOOKKEEPING or f.primary_key:
                continue
            if f.attname in data:
                value = data[f.attname]
                values[f.attname] = None if value is None else f.to_python(value)
        return values

    @classmethod
    def apply_replica_event(
        cls, key: str, op: str, revision: int, data: dict[str, Any] | None, using: str | None = None
    ) -> Outcome:
        """Apply one event: a newer revision wins, an equal one is a duplicate."""
        # Deletes leave a tombstone so that an older update cannot bring the row back.
        from servicebus.outbox.models import Tombstone

        using = using or router.db_for_write(cls)
        label = cls._meta.label_lower
        pk = cls._meta.pk.to_python(key)
        with transaction.atomic(using=using, savepoint=False):
            if op == "absent":
                # The source has no such key and no tombstone: drop a row it never had.
                cls._base_manager.using(using).filter(pk=pk).delete()
                return Outcome.APPLIED
            row_rev = (
                cls._base_manager.using(using)
                .select_for_update()
                .filter(pk=pk)
                .values_list("revision", flat=True)
                .first()
            )
            tombs = Tombstone.objects.using(using).filter(model=label, key=str(key))
            # A live row has no tombstone (applying a newer upsert removes it).
            tomb_rev = None
            if row_rev is None:
                tomb_rev = tombs.values_list("revision", flat=True).first()
            current = max(row_rev or 0, tomb_rev or 0)
            if revision == current:
                return Outcome.DUPLICATE
            if revision < current:
                return Outcome.STALE
            outcome = Outcome.APPLIED
            if current and revision > current + 1:
                logger.warning("%s %s: revision gap %d -> %d", label, key, current, revision)
                outcome = Outcome.GAP
            if op == "delete":
                cls._base_manager.using(using).filter(pk=pk).delete()
                Tombstone.objects.using(using).update_or_create(
                    model=label, key=str(key), defaults={"revision": revision}
                )
                return outcome
            if op != "upsert":
                raise ValueError(
                    f"unknown replication op {op!r}; expected upsert, delete or absent"
                )
            values = cls.from_replica(data or {})
            values.update(revision=revision, replicated_at=timezone.now())
            if row_rev is None:
                cls._base_manager.using(using).create(pk=pk, **values)
            else:
                cls._base_manager.using(using).filter(pk=pk).update(**values)
            if tomb_rev is not None:
                tombs.delete()  # the key lives again at a newer revision
            return outcome
