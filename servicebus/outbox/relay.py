"""The relay: publish unpublished outbox rows to Redis, once per row, safely in parallel."""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from django.db import DatabaseError, connections, router, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from servicebus.outbox.codec import encode_fields
from servicebus.outbox.models import OutboxEvent
from servicebus.outbox.settings import OutboxSettings, get_outbox_settings
from servicebus.outbox.transport import connect, xadd_many
from servicebus.runner import Runner

logger = logging.getLogger("servicebus.outbox.relay")

_clients: dict[str, redis.Redis] = {}


def _client(settings: OutboxSettings) -> redis.Redis:
    # One client (connection pool) per Redis URL per process.
    client = _clients.get(settings.REDIS_URL)
    if client is None:
        client = _clients[settings.REDIS_URL] = connect(settings)
    return client


@dataclass
class PublishResult:
    """How many rows one relay pass published and how many failed."""

    published: int = 0
    failed: int = 0


def publish_pending(
    *,
    using: str | None = None,
    event_ids: list[str] | None = None,
    limit: int | None = None,
    settings: OutboxSettings | None = None,
) -> PublishResult:
    """Publish up to ``limit`` unpublished rows (only ``event_ids`` if given), oldest first.

    A row is marked published only after Redis returned its stream id. Rows another
    relay holds are skipped: row locks on Postgres, an atomic claim elsewhere.
    """
    settings = settings or get_outbox_settings()
    using = using or router.db_for_write(OutboxEvent)
    limit = limit or settings.RELAY_BATCH_SIZE
    pending = OutboxEvent.objects.using(using).filter(published_at__isnull=True)
    if event_ids is not None:
        pending = pending.filter(pk__in=event_ids)
    if connections[using].features.has_select_for_update_skip_locked:
        with transaction.atomic(using=using):
            rows = list(pending.select_for_update(skip_locked=True).order_by("created_at")[:limit])
            return _publish(rows, using, settings)
    return _publish_claimed(pending, using, limit, settings)


def _publish_claimed(
    pending: QuerySet[OutboxEvent], using: str, limit: int, settings: OutboxSettings
) -> PublishResult:
    # Fallback without SKIP LOCKED (SQLite): one UPDATE claims free or lapsed rows for
    # this pass; only rows carrying our token are published. The UPDATE is atomic.
    token = uuid.uuid4().hex
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    candidates = pending.filter(free).order_by("created_at").values("pk")[:limit]
    claimed = pending.filter(free, pk__in=candidates).update(
        claimed_by=token, claimed_until=now + timedelta(seconds=settings.RELAY_CLAIM_TIMEOUT)
    )
    if not claimed:
        return PublishResult()
    rows = list(pending.filter(claimed_by=token).order_by("created_at"))
    return _publish(rows, using, settings, token=token)


def _renew_claim(rows: list[OutboxEvent], using: str, token: str, timeout: float) -> set[Any]:
    # Right before XADD: extend the claim on the rows still ours, and keep only those. A
    # relay that stalled past its claim finds the rows taken (or published) by another.
    with transaction.atomic(using=using):
        mine = OutboxEvent.objects.using(using).filter(
            pk__in=[row.pk for row in rows], claimed_by=token, published_at__isnull=True
        )
        mine.update(claimed_until=timezone.now() + timedelta(seconds=timeout))
        return set(mine.values_list("pk", flat=True))


def _publish(
    rows: list[OutboxEvent], using: str, settings: OutboxSettings, token: str | None = None
) -> PublishResult:
    # ``token``: the rows are claimed by token (no row locks), so every write checks it.
    entries = [
        (
            row.topic,
            encode_fields(
                str(row.id),
                row.topic,
                row.key,
                row.payload,
                row.headers,
                row.created_at.isoformat(),
            ),
        )
        for row in rows
    ]
    if token is not None and rows:
        held = _renew_claim(rows, using, token, settings.RELAY_CLAIM_TIMEOUT)
        if len(held) < len(rows):
            logger.warning(
                "relay: %d claimed row(s) lapsed to another relay", len(rows) - len(held)
            )
        kept = [(row, e) for row, e in zip(rows, entries, strict=True) if row.pk in held]
        rows, entries = [row for row, _ in kept], [e for _, e in kept]
    if not rows:
        return PublishResult()
    try:
        results: list[str | Exception] = xadd_many(
            _client(settings), entries, settings.STREAM_MAXLEN
        )
    except redis.RedisError as exc:
        results = [exc] * len(rows)
    ok = [row.pk for row, outcome in zip(rows, results, strict=True) if isinstance(outcome, str)]
    failed = [
        (row.pk, out) for row, out in zip(rows, results, strict=True) if not isinstance(out, str)
    ]
    pending = OutboxEvent.objects.using(using)
    if token is not None:
        pending = pending.filter(claimed_by=token)
    # Two UPDATEs per pass (not a per-row bulk_update): the relay's cost is per batch.
    with transaction.atomic(using=using):
        if ok:
            pending.filter(pk__in=ok).update(
                published_at=timezone.now(),
                attempts=F("attempts") + 1,
                claimed_by=None,
                claimed_until=None,
                last_error="",
            )
        if failed:
            pending.filter(pk__in=[pk for pk, _ in failed]).update(
                attempts=F("attempts") + 1,
                claimed_by=None,
                claimed_until=None,
                last_error=repr(failed[0][1])[:2000],
            )
    result = PublishResult(published=len(ok), failed=len(failed))
    if result.failed:
        logger.warning("relay: %d event(s) not published; will retry", result.failed)
    return result


def prune_published(*, using: str | None = None, settings: OutboxSettings | None = None) -> int:
    """Delete published rows older than the retention period; return how many."""
    settings = settings or get_outbox_settings()
    using = using or router.db_for_write(OutboxEvent)
    cutoff = timezone.now() - timedelta(seconds=settings.RETENTION_SECONDS)
    deleted, _ = OutboxEvent.objects.using(using).filter(published_at__lt=cutoff).delete()
    return deleted


def backlog(*, using: str | None = None) -> tuple[int, float]:
    """Unpublished rows and the age in seconds of the oldest (0.0 when none), for monitoring."""
    using = using or router.db_for_write(OutboxEvent)
    pending = OutboxEvent.objects.using(using).filter(published_at__isnull=True)
    oldest = pending.order_by("created_at").values_list("created_at", flat=True).first()
    age = (timezone.now() - oldest).total_seconds() if oldest else 0.0
    return pending.count(), max(age, 0.0)


class Relay:
    """Publishes the outbox continuously; SIGTERM/SIGINT stop it after the current pass."""

    def __init__(self, using: str | None = None, settings: OutboxSettings | None = None) -> None:
        self.settings = settings or get_outbox_settings()
        self.using = using or router.db_for_write(OutboxEvent)
        # The database away: back off and retry; the rows wait in the outbox meanwhile.
        self.runner = Runner("relay", retry_on=(DatabaseError,), max_backoff=5.0)

    def install_signal_handlers(self) -> None:
        """Stop gracefully on SIGTERM and SIGINT (main thread only)."""
        self.runner.install_signal_handlers()

    def stop(self) -> None:
        """Stop after the current pass (any thread)."""
        self.runner.stop()

    def drain(self, max_passes: int = 10_000) -> PublishResult:
        """Publish until nothing is left (or a pass publishes nothing); bounded passes."""
        total = PublishResult()
        for _ in range(max_passes):
            if self.runner.stopping:
                break
            step = publish_pending(using=self.using, settings=self.settings)
            total.published += step.published
            total.failed += step.failed
            if step.published == 0:
                break
        return total

    def run(self, once: bool = False) -> PublishResult:
        """Publish and prune until stopped; ``once`` drains a single time and returns.

        With ``once`` an error is raised at once (a cron job runs it again), otherwise
        the runner retries database errors with backoff.
        """
        total = PublishResult()
        last_prune = -math.inf
        logger.info("relay started on database %r", self.using)

        def step() -> float:
            nonlocal last_prune
            try:
                done = self.drain()
            except DatabaseError:
                # A broken connection must not be handed to the next pass.
                connections[self.using].close_if_unusable_or_obsolete()
                raise
            total.published += done.published
            total.failed += done.failed
            if once or time.monotonic() - last_prune > 60.0:
                prune_published(using=self.using, settings=self.settings)
                last_prune = time.monotonic()
            return self.settings.RELAY_POLL_INTERVAL

        if once:
            step()
        else:
            self.runner.run(step)
        return total
