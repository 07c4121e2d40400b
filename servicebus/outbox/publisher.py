"""``publish_event``: write an event in the caller's transaction, publish it after commit."""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections, router, transaction

from servicebus.context import current_correlation_id
from servicebus.outbox.constants import CORRELATION_HEADER
from servicebus.outbox.settings import get_outbox_settings
from servicebus.telemetry import tracing

logger = logging.getLogger("servicebus.outbox")


class TransactionState:
    """What servicebus wrote in one database transaction; runs as its on-commit callback.

    Its presence in the connection's on-commit list is how we recognise "the same
    transaction" (Django drops the callback on rollback and after commit).
    """

    def __init__(self, using: str) -> None:
        self.using = using
        self.event_ids: list[str] = []
        # (model label, key) -> (outbox event id, revision) for SourceModel rows.
        self.source_rows: dict[tuple[str, str], tuple[str, int]] = {}

    def __call__(self) -> None:
        if self.event_ids:
            publish_after_commit(self.event_ids, self.using)


def transaction_state(using: str) -> TransactionState:
    """The state of the open transaction on ``using`` (must be inside an atomic block)."""
    conn = connections[using]
    if not conn.in_atomic_block:
        raise RuntimeError("transaction_state() needs an open transaction.atomic() block")
    state: TransactionState | None = getattr(conn, "_servicebus_txn_state", None)
    if state is not None and any(entry[1] is state for entry in conn.run_on_commit):
        return state
    state = TransactionState(using)
    conn._servicebus_txn_state = state  # type: ignore[attr-defined]
    transaction.on_commit(state, using=using, robust=True)
    return state


def publish_event(
    topic: str,
    payload: Any,
    key: str | None = None,
    *,
    headers: dict[str, Any] | None = None,
    using: str | None = None,
) -> str:
    """Write an event to the outbox in the current transaction; return its event id.

    Nothing is written if the transaction rolls back. After commit the event is
    published at once (best effort); the relay publishes whatever that misses.
    """
    # Imported here, not at the top: ``servicebus.outbox`` (this module included) must
    # import before Django's app registry is ready, and models need the registry.
    from servicebus.outbox.models import OutboxEvent

    using = using or router.db_for_write(OutboxEvent)
    all_headers = dict(headers or {})
    correlation_id = current_correlation_id()
    if correlation_id:
        all_headers.setdefault(CORRELATION_HEADER, correlation_id)
    # W3C trace context of the current span, so consumers continue the trace.
    tracing.inject(all_headers)
    # savepoint=False: inside the caller's transaction this adds no round trips; alone
    # it is its own transaction, so the on-commit publish still runs.
    with transaction.atomic(using=using, savepoint=False):
        row = OutboxEvent.objects.using(using).create(
            topic=topic, key="" if key is None else str(key), payload=payload, headers=all_headers
        )
        transaction_state(using).event_ids.append(str(row.id))
    return str(row.id)


def publish_after_commit(event_ids: list[str], using: str) -> None:
    """On-commit publish of these events; a failure only leaves them for the relay."""
    from servicebus.outbox.relay import publish_pending  # imports the models: see above

    settings = get_outbox_settings()
    if not settings.PUBLISH_ON_COMMIT:
        return
    try:
        publish_pending(using=using, event_ids=event_ids, settings=settings)
    except Exception:  # the relay will publish them; never fail the committed request
        logger.warning("on-commit publish failed; the relay will retry", exc_info=True)
