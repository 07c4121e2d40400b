"""Errors of the durable-events part; all derive from ``ServiceBusError``."""

from __future__ import annotations

from servicebus.errors import ServiceBusError


class OutboxError(ServiceBusError):
    """Root of the outbox, consumer and replication errors."""

    code = "outbox_error"


class UndecodableEvent(OutboxError):
    """A stream entry could not be parsed; it is dead-lettered, never dropped."""

    code = "undecodable_event"
    hint = "inspect it with `manage.py servicebus_deadletters list` and fix the producer"


class ReplicationConfigError(OutboxError):
    """A source or replica model is declared wrongly (e.g. no ``Replication.topic``)."""

    code = "replication_config"
    hint = 'give the model an inner `class Replication: topic = "service.model"`'


class DumpFormatError(OutboxError):
    """A dump file given to load or diff is not a servicebus dump."""

    code = "dump_format"
    hint = "produce the file with `manage.py servicebus_dump <model>` on the source service"


class ConsumerConfigError(OutboxError):
    """A consumer cannot start as configured (e.g. no consumer group)."""

    code = "consumer_config"
    hint = "pass --group, or set SERVICEBUS['SERVICE_NAME'] or SERVICEBUS_OUTBOX['CONSUMER_GROUP']"
