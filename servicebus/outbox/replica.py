"""``ReplicaModel``: a read-only copy that applies source events in revision order."""

from __future__ import annotations

import enum
import logging
from collections import Counter
from typing import Any

from django.db import models, router, transaction
from django.utils import timezone

from servicebus.outbox.models import Tombstone

logger = logging.getLogger("servicebus.outbox.replica")

REPLICA_BOOKKEEPING = frozenset({"revision", "replicated_at"})


class Outcome(enum.Enum):
    """What applying one replication event did."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # same revision as the replica: already applied
    STALE = "stale"  # older than the replica (or its tombstone): ignored
    GAP = "gap"  # applied, but revisions in between were never seen


def judge(revision: int, current: int, seen: set[int]) -> Outcome:
    """The revision rule: what an event at ``revision`` does to a replica at ``current``.

    Equal: a duplicate; older: stale; newer: applied, or a gap when a revision between
    the two was never seen (``seen``: the revisions of this key in the same batch).
    """
    if revision == current:
        return Outcome.DUPLICATE
    if revision < current:
        return Outcome.STALE
    if current and set(range(current + 1, revision)) - seen:
        return Outcome.GAP
    return Outcome.APPLIED


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
        if op == "absent":
            # The source has no such key and no tombstone: drop a row it never had.
            using = using or router.db_for_write(cls)
            cls._base_manager.using(using).filter(pk=cls._meta.pk.to_python(key)).delete()
            return Outcome.APPLIED
        if op not in ("upsert", "delete"):
            raise ValueError(f"unknown replication op {op!r}; expected upsert, delete or absent")
        counts = cls.apply_replica_events([(key, op, revision, data)], using=using)
        [outcome] = [Outcome(name) for name, n in counts.items() if n]
        return outcome

    @classmethod
    def apply_replica_events(
        cls, items: list[tuple[str, str, int, dict[str, Any] | None]], using: str | None = None
    ) -> Counter[str]:
        """Apply many (key, op, revision, data) at once: same rules, a few queries per batch.

        Per key only the highest revision can win; the others are stale or duplicates.
        """
        if any(op not in ("upsert", "delete") for _, op, _, _ in items):
            # Rare operations ("absent") keep their place in the order: one by one.
            return Counter(cls.apply_replica_event(*item, using=using).value for item in items)
        using = using or router.db_for_write(cls)
        label = cls._meta.label_lower
        to_pk = cls._meta.pk.to_python
        best: dict[str, tuple[str, int, dict[str, Any] | None]] = {}
        seen_revisions: dict[str, set[int]] = {}
        for key, op, revision, data in items:
            key = str(key)
            seen_revisions.setdefault(key, set()).add(revision)
            if key not in best or revision > best[key][1]:
                best[key] = (op, revision, data)
        counts: Counter[str] = Counter()
        counts[Outcome.STALE.value] += len(items) - len(best)  # superseded within the batch
        manager = cls._base_manager.using(using)
        with transaction.atomic(using=using, savepoint=False):
            rows = {
                str(pk): rev
                for pk, rev in manager.select_for_update()
                .filter(pk__in=[to_pk(k) for k in best])
                .values_list("pk", "revision")
            }
            missing = [k for k in best if k not in rows]
            tombs = dict(
                Tombstone.objects.using(using)
                .filter(model=label, key__in=missing)
                .values_list("key", "revision")
            )
            deletes: dict[str, int] = {}
            creates: list[Any] = []
            now = timezone.now()
            for key, (op, revision, data) in best.items():
                # The replica's revision: its row's, else its tombstone's (a live row has none).
                current = max(rows.get(key, 0), tombs.get(key, 0))
                outcome = judge(revision, current, seen_revisions[key])
                counts[outcome.value] += 1
                if outcome in (Outcome.DUPLICATE, Outcome.STALE):
                    continue
                if outcome is Outcome.GAP:
                    logger.warning("%s %s: revision gap %d -> %d", label, key, current, revision)
                if op == "delete":
                    deletes[key] = revision
                    continue
                values = cls.from_replica(data or {})
                values.update(revision=revision, replicated_at=now)
                if key in rows:
                    manager.filter(pk=to_pk(key)).update(**values)
                else:
                    creates.append(cls(pk=to_pk(key), **values))
            if deletes:
                manager.filter(pk__in=[to_pk(k) for k in deletes]).delete()
                Tombstone.objects.using(using).bulk_create(
                    [Tombstone(model=label, key=k, revision=r) for k, r in deletes.items()],
                    update_conflicts=True,
                    unique_fields=["model", "key"],
                    update_fields=["revision", "deleted_at"],
                )
            if creates:
                manager.bulk_create(creates)
                revived = [str(c.pk) for c in creates if str(c.pk) in tombs]
                if revived:  # the keys live again at newer revisions
                    Tombstone.objects.using(using).filter(model=label, key__in=revived).delete()
        return counts
