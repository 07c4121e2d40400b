"""Bulk copy and repair: dump a source, load a replica, diff a replica against a dump."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from django.core.serializers.json import DjangoJSONEncoder
from django.db import router, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from servicebus.outbox.constants import RESYNC_TOPIC
from servicebus.outbox.errors import DumpFormatError
from servicebus.outbox.models import Tombstone
from servicebus.outbox.publisher import publish_event
from servicebus.outbox.source import replication_topic

DUMP_FORMAT = 1


class Writer(Protocol):
    """Anything with ``write(text)``: a file, sys.stdout, a command's stdout."""

    def write(self, text: str, /) -> Any:
        """Write text."""


def dump(
    model: type[Any], out: Writer, *, keys_only: bool = False, using: str | None = None
) -> int:
    """Write the source model as JSON lines (a header, then one line per key); return rows."""
    using = using or router.db_for_read(model)
    label = model._meta.label_lower
    header = {
        "servicebus_dump": DUMP_FORMAT,
        "model": label,
        "topic": replication_topic(model),
        "keys_only": keys_only,
        "dumped_at": timezone.now().isoformat(),
    }
    out.write(json.dumps(header) + "\n")
    count = 0
    alive: set[str] = set()
    for row in model._base_manager.using(using).order_by("pk").iterator(chunk_size=2000):
        key = row.replication_key()
        alive.add(key)
        line: dict[str, Any] = {"key": key, "revision": row.revision}
        if not keys_only:
            line["data"] = row.to_replica()
        out.write(json.dumps(line, cls=DjangoJSONEncoder) + "\n")
        count += 1
    for key, revision in (
        Tombstone.objects.using(using).filter(model=label).values_list("key", "revision")
    ):
        if key not in alive:
            out.write(json.dumps({"key": key, "revision": revision, "deleted": True}) + "\n")
            count += 1
    return count


def read_dump(lines: Iterable[str]) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """Parse a dump: its header, and an iterator over its key lines."""
    it = iter(lines)
    try:
        header = json.loads(next(it))
    except (StopIteration, ValueError) as exc:
        raise DumpFormatError("the dump is empty or its first line is not JSON") from exc
    if not isinstance(header, dict) or header.get("servicebus_dump") != DUMP_FORMAT:
        raise DumpFormatError("the first line is not a servicebus dump header")

    def rows() -> Iterator[dict[str, Any]]:
        for number, text in enumerate(it, start=2):
            if text.strip():
                try:
                    yield json.loads(text)
                except ValueError as exc:
                    raise DumpFormatError(f"line {number} is not JSON") from exc

    return header, rows()


def load(replica: type[Any], lines: Iterable[str], *, using: str | None = None) -> dict[str, int]:
    """Apply a full dump to a replica model (revision rules apply); return outcome counts."""
    header, rows = read_dump(lines)
    if header.get("keys_only"):
        raise DumpFormatError("a --keys-only dump has no data to load; dump without it")
    using = using or router.db_for_write(replica)
    counts: dict[str, int] = {}
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        with transaction.atomic(using=using):
            for line in batch:
                op = "delete" if line.get("deleted") else "upsert"
                outcome = replica.apply_replica_event(
                    str(line["key"]), op, int(line["revision"]), line.get("data"), using=using
                )
                counts[outcome.value] = counts.get(outcome.value, 0) + 1
        batch.clear()

    for line in rows:
        batch.append(line)
        if len(batch) >= 500:
            flush()
    if batch:
        flush()
    return counts


@dataclass
class DiffReport:
    """What a diff found and did."""

    resync_requested: list[str] = field(default_factory=list)
    deleted_locally: list[str] = field(default_factory=list)
    reset_locally: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        """True when the replica matched the source."""
        return not (self.resync_requested or self.deleted_locally or self.reset_locally)


def diff(
    replica: type[Any],
    lines: Iterable[str],
    *,
    replica_group: str | None = None,
    using: str | None = None,
    dry_run: bool = False,
) -> DiffReport:
    """Compare (key, revision) with a source ``--keys-only`` dump and repair what differs.

    Deletes at the source are applied here at once; missing, older or corrupt rows are
    re-requested from the source (an event on ``servicebus.resync``).
    """
    header, rows = read_dump(lines)
    using = using or router.db_for_write(replica)
    label = replica._meta.label_lower
    dumped_at = parse_datetime(str(header.get("dumped_at", ""))) or timezone.now()
    source = {str(r["key"]): (int(r["revision"]), bool(r.get("deleted"))) for r in rows}
    local: dict[str, tuple[int, datetime | None]] = {
        str(pk): (rev, at)
        for pk, rev, at in replica._base_manager.using(using).values_list(
            "pk", "revision", "replicated_at"
        )
    }
    tombs = dict(Tombstone.objects.using(using).filter(model=label).values_list("key", "revision"))
    report = DiffReport()
    reset: list[str] = []
    for key, (rev, deleted) in source.items():
        mine = local.get(key, (None, None))[0]
        have = max(mine or 0, tombs.get(key, 0))
        if deleted:
            if mine is not None:  # deleted at the source: drop it here, tombstone at rev
                report.deleted_locally.append(key)
                reset.append(key)
        elif have < rev:
            report.resync_requested.append(key)
        elif have > rev or mine is None:  # ahead of the source, or a tombstone it never had
            report.reset_locally.append(key)
            reset.append(key)
            report.resync_requested.append(key)
    for key, (_rev, at) in local.items():
        # Rows replicated after the dump may be newer than it: leave them for the next diff.
        if key not in source and not (at and at > dumped_at):
            report.deleted_locally.append(key)
            reset.append(key)
            report.resync_requested.append(key)
    if dry_run:
        return report
    with transaction.atomic(using=using):
        if reset:
            pks = [replica._meta.pk.to_python(k) for k in reset]
            replica._base_manager.using(using).filter(pk__in=pks).delete()
            Tombstone.objects.using(using).filter(model=label, key__in=reset).delete()
        for key in report.deleted_locally:
            rev, deleted = source.get(key, (0, False))
            if deleted:
                replica.apply_replica_event(key, "delete", rev, None, using=using)
        if report.resync_requested:
            payload = {
                "topic": header.get("topic") or replication_topic(replica),
                "keys": report.resync_requested,
                "replica_group": replica_group,
            }
            publish_event(RESYNC_TOPIC, payload, key=label, using=using)
    return report
