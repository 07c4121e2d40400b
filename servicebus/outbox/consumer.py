"""The consumer: read topic streams in a group, run handlers once per event id, then XACK."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from django.db import DatabaseError, connections, router, transaction

from servicebus.outbox.codec import Event, decode_fields
from servicebus.outbox.constants import TARGET_GROUP_HEADER, event_stream, last_chance_key
from servicebus.outbox.errors import ConsumerConfigError, UndecodableEvent
from servicebus.outbox.models import InboxEvent
from servicebus.outbox.registry import run_handlers, topics
from servicebus.outbox.settings import OutboxSettings, get_outbox_settings
from servicebus.outbox.transport import connect, dead_letter, deliveries, ensure_group, text
from servicebus.runner import Runner

logger = logging.getLogger("servicebus.outbox.consumer")

# (topic, stream id, raw fields)
RawEntry = tuple[str, str, Any]


@dataclass
class ConsumeResult:
    """Counts of one or more consumer passes."""

    handled: int = 0
    duplicates: int = 0
    skipped: int = 0
    failed: int = 0
    dead_lettered: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: ConsumeResult) -> None:
        """Add another result's counts to this one."""
        self.handled += other.handled
        self.duplicates += other.duplicates
        self.skipped += other.skipped
        self.failed += other.failed
        self.dead_lettered += other.dead_lettered
        self.errors.extend(other.errors)

    @property
    def seen(self) -> int:
        """How many entries the passes looked at."""
        return self.handled + self.duplicates + self.skipped + self.failed + self.dead_lettered


def _decode_raw(fields: Any) -> dict[str, str]:
    if not isinstance(fields, dict):
        raise UndecodableEvent("entry has no fields")
    try:
        return {
            text(k): v.decode("utf-8") if isinstance(v, bytes) else str(v)
            for k, v in fields.items()
        }
    except UnicodeDecodeError as exc:
        raise UndecodableEvent(f"entry is not UTF-8: {exc}") from exc


class Consumer:
    """Consumes the streams of the registered topics as one member of a consumer group."""

    def __init__(
        self,
        group: str | None = None,
        topic_names: list[str] | None = None,
        *,
        using: str | None = None,
        settings: OutboxSettings | None = None,
        name: str | None = None,
    ) -> None:
        self.settings = settings or get_outbox_settings()
        self.group = group or self.settings.CONSUMER_GROUP
        if not self.group:
            raise ConsumerConfigError("no consumer group is configured")
        self.topics = list(topic_names) if topic_names is not None else topics()
        self.using = using or router.db_for_write(InboxEvent)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}"
        self.client: redis.Redis = connect(self.settings, raw=True)
        # Redis or the database away: back off and retry; the entries stay pending.
        self.runner = Runner(
            f"consumer {self.group}",
            retry_on=(redis.RedisError, OSError, DatabaseError),
            max_backoff=5.0,
        )
        self._streams = {event_stream(t): t for t in self.topics}
        self._groups_ready = False

    def install_signal_handlers(self) -> None:
        """Stop gracefully on SIGTERM and SIGINT after the current batch (main thread only)."""
        self.runner.install_signal_handlers()

    def stop(self) -> None:
        """Stop after the current batch (any thread)."""
        self.runner.stop()

    def ensure_groups(self) -> None:
        """Create the group on every topic stream (idempotent)."""
        for topic in self.topics:
            ensure_group(self.client, topic, self.group)
        self._groups_ready = True

    def run(self, once: bool = False, max_passes: int = 10_000) -> ConsumeResult:
        """Consume until stopped; ``once`` returns when nothing is left to read or reclaim.

        With ``once`` (at most ``max_passes`` passes) an error is raised at once; otherwise
        the runner retries Redis and database errors with backoff, entries stay pending.
        """
        total = ConsumeResult()
        if not self.topics:
            logger.warning("consumer %s: no topics have handlers; nothing to do", self.group)
            return total
        logger.info("consumer %s of group %s started on %s", self.name, self.group, self.topics)

        def step() -> float:
            total.add(self._pass(block=True))
            return 0.0  # the blocking read paces the loop

        if once:
            for _ in range(max_passes):
                done = self._pass(block=False)
                total.add(done)
                if done.seen == 0 or self.runner.stopping:
                    break
        else:
            self.runner.run(step)
        self._leave()
        return total

    def _pass(self, block: bool) -> ConsumeResult:
        try:
            return self.poll(block=block)
        except DatabaseError:
            # A broken connection must not be handed to the next pass.
            connections[self.using].close_if_unusable_or_obsolete()
            raise

    def _leave(self) -> None:
        # Forget this consumer name in each group it holds nothing in, so restarts don't
        # pile up names. Never with pending entries: DELCONSUMER would drop them.
        try:
            for stream in self._streams:
                mine = self.client.xpending_range(stream, self.group, "-", "+", 1, self.name)
                if not mine:
                    self.client.xgroup_delconsumer(stream, self.group, self.name)
        except redis.RedisError:
            logger.debug("could not remove consumer %s from %s", self.name, self.group)

    def poll(self, block: bool = True) -> ConsumeResult:
        """One pass: reclaim entries idle past the visibility timeout, then read new ones."""
        if not self._groups_ready:
            self.ensure_groups()
        result = ConsumeResult()
        reclaimed = self._reclaim()
        if reclaimed:
            result.add(self.process(reclaimed, reclaimed=True))
        block_ms = (
            int(self.settings.CONSUMER_BLOCK_SECONDS * 1000) if block and not reclaimed else None
        )
        reply: Any = self.client.xreadgroup(
            self.group,
            self.name,
            {stream: ">" for stream in self._streams},
            count=self.settings.CONSUMER_BATCH_SIZE,
            block=block_ms,
        )
        fresh: list[RawEntry] = []
        for stream, entries in reply or []:
            topic = self._streams[text(stream)]
            fresh.extend((topic, text(sid), fields) for sid, fields in entries)
        if fresh:
            result.add(self.process(fresh))
        return result

    def _reclaim(self) -> list[RawEntry]:
        idle_ms = int(self.settings.VISIBILITY_TIMEOUT * 1000)
        claimed: list[RawEntry] = []
        for stream, topic in self._streams.items():
            reply: Any = self.client.xautoclaim(
                stream,
                self.group,
                self.name,
                idle_ms,
                "0-0",
                count=self.settings.CONSUMER_BATCH_SIZE,
            )
            # Reply: [next start id, [(id, fields), ...], [ids trimmed from the stream]].
            entries, trimmed = reply[1], reply[2] if len(reply) > 2 else []
            if trimmed:
                logger.error(
                    "topic %s: %d pending entries were trimmed (MAXLEN) before being "
                    "acknowledged; raise STREAM_MAXLEN; re-sync the affected models",
                    topic,
                    len(trimmed),
                )
            claimed.extend((topic, text(sid), fields) for sid, fields in entries)
        return claimed

    def process(self, raw: list[RawEntry], reclaimed: bool = False) -> ConsumeResult:
        """Handle a batch in one DB transaction (savepoints only after a failure), then XACK.

        Each entry is decoded on its own: a malformed one is dead-lettered, never its
        neighbours. A reclaimed entry past MAX_DELIVERIES is acked if the inbox has it,
        else it runs once more, alone (its last chance), before it can be dead-lettered.
        """
        result = ConsumeResult()
        events: list[tuple[Event, RawEntry]] = []
        last_chances: list[tuple[Event, RawEntry]] = []
        for entry in raw:
            topic, sid, fields = entry
            try:
                event = decode_fields(
                    sid, _decode_raw(fields), database=self.using, stream_topic=topic
                )
            except UndecodableEvent as exc:
                self._dead(entry, str(exc), result)
                continue
            target = event.headers.get(TARGET_GROUP_HEADER)
            if target and target != self.group:
                self._ack([entry])
                result.skipped += 1
                continue
            # Deliveries also grow when a consumer dies or the database is away before any
            # handler ran, so the count alone never dead-letters an entry.
            if reclaimed and (
                deliveries(self.client, topic, self.group, sid) > self.settings.MAX_DELIVERIES
            ):
                last_chances.append((event, entry))
            else:
                events.append((event, entry))
        if len(events) == 1:
            self._settle(self._run(events, isolate=True), result)
        elif events:
            try:  # fast path: the whole batch in one transaction, no savepoints
                outcome = self._run(events, isolate=False)
            except Exception as exc:
                # Something failed: redo the batch with one savepoint per event, so only
                # the failing events stay pending (their handlers run a second time).
                logger.info("batch failed (%r); retrying event by event", exc)
                outcome = self._run(events, isolate=True)
            self._settle(outcome, result)
        for event, entry in last_chances:
            self._last_chance(event, entry, result)
        return result

    def _last_chance(self, event: Event, entry: RawEntry, result: ConsumeResult) -> None:
        # One more run, alone. A marker set just before the handler runs tells the next
        # reclaim that the handler took the process down, so such an entry cannot loop.
        marker = last_chance_key(entry[0], self.group, entry[1])
        try:
            outcome = self._run([(event, entry)], isolate=True, marker=marker)
        except Exception:
            # Not the handler (its errors are caught in _run): the database or Redis. The
            # handler's work rolled back, so the entry keeps its chance.
            self.client.delete(marker)
            raise
        self._settle(outcome, result)
        self.client.delete(marker)

    def _settle(
        self,
        outcome: tuple[list[RawEntry], list[tuple[RawEntry, str]], int, int],
        result: ConsumeResult,
    ) -> None:
        # XACK what committed; dead-letter failures that used up their deliveries.
        acks, failures, handled, duplicates = outcome
        self._ack(acks)
        result.handled += handled
        result.duplicates += duplicates
        for entry, error in failures:
            count = deliveries(self.client, entry[0], self.group, entry[1])
            if count >= self.settings.MAX_DELIVERIES:
                self._dead(entry, f"failed {count} deliveries; last error: {error}", result)
            else:
                result.failed += 1
                result.errors.append(error)

    def _run(
        self, events: list[tuple[Event, RawEntry]], isolate: bool, marker: str = ""
    ) -> tuple[list[RawEntry], list[tuple[RawEntry, str]], int, int]:
        # Handlers and inbox rows commit together; XACK happens only after this returns.
        # The inbox is read first: an event already applied is acked whatever its count.
        acks: list[RawEntry] = []
        failures: list[tuple[RawEntry, str]] = []
        handled = duplicates = 0
        inbox = InboxEvent.objects.using(self.using)
        with transaction.atomic(using=self.using):
            done = {
                str(eid)
                for eid in inbox.filter(
                    group=self.group, event_id__in=[e.id for e, _ in events]
                ).values_list("event_id", flat=True)
            }
            new_rows: list[InboxEvent] = []
            by_topic: dict[str, list[Event]] = {}
            for event, entry in events:
                if event.id in done:
                    acks.append(entry)
                    duplicates += 1
                    continue
                if marker and not self.client.set(marker, self.name, nx=True, ex=self._marker_ttl):
                    failures.append((entry, "the consumer stopped while it ran its last chance"))
                    continue
                row = InboxEvent(group=self.group, event_id=event.id, topic=event.topic)
                if isolate:
                    try:
                        with transaction.atomic(using=self.using):
                            row.save(using=self.using, force_insert=True)
                            run_handlers(event.topic, [event])
                    except Exception as exc:  # one bad event must not stop the others
                        logger.warning("handler failed for %s %s: %r", event.topic, event.id, exc)
                        failures.append((entry, f"{type(exc).__name__}: {exc}"))
                        continue
                else:
                    by_topic.setdefault(event.topic, []).append(event)
                    new_rows.append(row)
                done.add(event.id)
                acks.append(entry)
                handled += 1
            for topic, batch in by_topic.items():
                run_handlers(topic, batch)
            if new_rows:
                inbox.bulk_create(new_rows)
        return acks, failures, handled, duplicates

    @property
    def _marker_ttl(self) -> int:
        # Long enough to outlive any redelivery cycle; the marker only guards one entry.
        return max(86_400, int(self.settings.VISIBILITY_TIMEOUT * 10))

    def _ack(self, entries: list[RawEntry]) -> None:
        if not entries:
            return
        pipe = self.client.pipeline(transaction=False)
        for topic, sid, _ in entries:
            pipe.xack(event_stream(topic), self.group, sid)
        pipe.execute()

    def _dead(self, entry: RawEntry, error: str, result: ConsumeResult) -> None:
        topic, sid, fields = entry
        logger.error("dead-lettering %s %s: %s", topic, sid, error)
        dead_letter(self.client, topic, self.group, sid, fields, error)
        result.dead_lettered += 1
        result.errors.append(error)


def consume_until_idle(consumer: Consumer, timeout: float = 30.0) -> ConsumeResult:
    """Run passes without blocking until one sees nothing or ``timeout`` passes (tests)."""
    total = ConsumeResult()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = consumer.poll(block=False)
        total.add(step)
        if step.seen == 0:
            break
    return total
