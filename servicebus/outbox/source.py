"""``SourceModel``: the owning service's model; every committed change becomes an event."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models, router, transaction

from servicebus.outbox.errors import ReplicationConfigError
from servicebus.outbox.models import OutboxEvent, Tombstone
from servicebus.outbox.publisher import publish_event, transaction_state


def replication_topic(model: type[models.Model]) -> str:
    """The topic named by the model's inner ``class Replication: topic = "..."``."""
    topic = getattr(getattr(model, "Replication", None), "topic", "")
    if not topic:
        raise ReplicationConfigError(f"{model.__name__} has no Replication.topic")
    return str(topic)


class SourceModel(models.Model):
    """Mixin for a model its service owns; replicas elsewhere follow it by revision.

    ``revision`` grows by one per transaction that changes the row (several saves in
    one transaction make one event with the final state). Changes made with
    ``QuerySet.update()``/``bulk_*``/``QuerySet.delete()`` bypass it: use ``save()``
    and ``delete()``, or ``servicebus_resync`` afterwards.
    """

    revision: models.PositiveBigIntegerField[Any, Any] = models.PositiveBigIntegerField(
        default=0, editable=False
    )

    class Replication:
        topic = ""
        # Field attnames sent to replicas; None means every concrete field.
        fields: ClassVar[list[str] | None] = None

    class Meta:
        abstract = True

    def replication_key(self) -> str:
        """The key of the row on the wire (the primary key as text)."""
        return str(self.pk)

    def to_replica(self) -> dict[str, Any]:
        """The row as replicas see it (JSON-serialisable with DjangoJSONEncoder)."""
        wanted = getattr(self.Replication, "fields", None)
        return {
            f.attname: f.value_from_object(self)
            for f in self._meta.concrete_fields
            if f.attname != "revision" and (wanted is None or f.attname in wanted)
        }

    def replication_payload(self, op: str = "upsert") -> dict[str, Any]:
        """The event payload for this row: operation, revision and data."""
        data = self.to_replica() if op == "upsert" else None
        return {"op": op, "revision": self.revision, "model": self._meta.label_lower, "data": data}

    def _current_revision(self, using: str) -> int:
        # Locks the row so concurrent writers get consecutive revisions in commit order.
        if self.pk is None:
            return 0
        current = (
            type(self)
            ._base_manager.using(using)
            .select_for_update()
            .filter(pk=self.pk)
            .values_list("revision", flat=True)
            .first()
        )
        if current is not None:
            return int(current)
        tomb = (
            Tombstone.objects.using(using)
            .filter(model=self._meta.label_lower, key=self.replication_key())
            .values_list("revision", flat=True)
            .first()
        )
        return int(tomb or 0)

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save, bump the revision once per transaction, and write the event to the outbox."""
        topic = replication_topic(type(self))
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "revision"}
        with transaction.atomic(using=using, savepoint=False):
            state = transaction_state(using)
            label = self._meta.label_lower
            seen = state.source_rows.get((label, self.replication_key())) if self.pk else None
            if seen and OutboxEvent.objects.using(using).filter(pk=seen[0]).exists():
                # Saved before in this transaction: same revision, one event, final state.
                self.revision = seen[1]
                super().save(*args, **kwargs)
                OutboxEvent.objects.using(using).filter(pk=seen[0]).update(
                    payload=self.replication_payload()
                )
                return
            self.revision = self._current_revision(using) + 1
            super().save(*args, **kwargs)
            key = self.replication_key()
            event_id = publish_event(topic, self.replication_payload(), key=key, using=using)
            state.source_rows[(label, key)] = (event_id, self.revision)

    def delete(self, using: Any = None, keep_parents: bool = False) -> tuple[int, dict[str, int]]:
        """Delete, keep a tombstone with the final revision, and write a delete event."""
        topic = replication_topic(type(self))
        using = using or router.db_for_write(type(self), instance=self)
        key = self.replication_key()
        label = self._meta.label_lower
        with transaction.atomic(using=using, savepoint=False):
            state = transaction_state(using)
            self.revision = self._current_revision(using) + 1
            result = super().delete(using=using, keep_parents=keep_parents)
            Tombstone.objects.using(using).update_or_create(
                model=label, key=key, defaults={"revision": self.revision}
            )
            payload = {"op": "delete", "revision": self.revision, "model": label, "data": None}
            publish_event(topic, payload, key=key, using=using)
            state.source_rows.pop((label, key), None)
        return result
