"""Tables of durable events: the outbox, the consumers' inbox, and replication tombstones."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class OutboxEvent(models.Model):
    """An event written in the producer's transaction, published to Redis after commit."""

    id: models.UUIDField[Any, Any] = models.UUIDField(
        primary_key=True, default=uuid.uuid4, editable=False
    )
    topic: models.CharField[Any, Any] = models.CharField(max_length=200)
    key: models.CharField[Any, Any] = models.CharField(max_length=200, blank=True, default="")
    payload: models.JSONField[Any, Any] = models.JSONField(encoder=DjangoJSONEncoder)
    headers: models.JSONField[Any, Any] = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    created_at: models.DateTimeField[Any, Any] = models.DateTimeField(
        auto_now_add=True, db_index=True
    )
    attempts: models.PositiveIntegerField[Any, Any] = models.PositiveIntegerField(default=0)
    published_at: models.DateTimeField[Any, Any] = models.DateTimeField(null=True, blank=True)
    # The SQLite fallback claims rows by UPDATE; Postgres uses row locks instead.
    claimed_by: models.CharField[Any, Any] = models.CharField(max_length=64, null=True, blank=True)
    claimed_until: models.DateTimeField[Any, Any] = models.DateTimeField(null=True, blank=True)
    last_error: models.TextField[Any, Any] = models.TextField(blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["published_at", "created_at"], name="sb_outbox_pending")]

    def __str__(self) -> str:
        return f"{self.topic}:{self.key}:{self.id}"


class InboxEvent(models.Model):
    """An event id a consumer group has processed; its unique row makes processing once."""

    group: models.CharField[Any, Any] = models.CharField(max_length=200)
    event_id: models.UUIDField[Any, Any] = models.UUIDField()
    topic: models.CharField[Any, Any] = models.CharField(max_length=200)
    processed_at: models.DateTimeField[Any, Any] = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "event_id"], name="sb_inbox_once")]


class Tombstone(models.Model):
    """The revision at which a replicated row was deleted, so older updates cannot revive it."""

    model: models.CharField[Any, Any] = models.CharField(max_length=200)  # app_label.model_name
    key: models.CharField[Any, Any] = models.CharField(max_length=200)
    revision: models.PositiveBigIntegerField[Any, Any] = models.PositiveBigIntegerField()
    deleted_at: models.DateTimeField[Any, Any] = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="sb_tombstone_key")]
