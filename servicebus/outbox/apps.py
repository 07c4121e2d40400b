"""Django app config of durable events: registers replica models as subscribers."""

from __future__ import annotations

from django.apps import AppConfig


class OutboxConfig(AppConfig):
    """The ``servicebus.outbox`` Django app (outbox, inbox and tombstone tables)."""

    name = "servicebus.outbox"
    label = "servicebus_outbox"
    verbose_name = "Service bus durable events"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from servicebus.outbox.replication import register_replication_handlers

        register_replication_handlers()
