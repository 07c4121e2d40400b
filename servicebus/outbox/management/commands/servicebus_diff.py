"""``manage.py servicebus_diff app.ReplicaModel < keys.jsonl``: repair by (key, revision)."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import CommandParser

from servicebus.outbox.management.base import OutboxCommand
from servicebus.outbox.replication import get_model
from servicebus.outbox.sync import diff


class Command(OutboxCommand):
    help = (
        "Compare a replica with the source's `servicebus_dump --keys-only` output; apply "
        "source deletes and ask the source to re-sync what differs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="app_label.ModelName of a ReplicaModel")
        parser.add_argument("--file", default="-", help="keys-only dump (default: stdin)")
        parser.add_argument("--group", default=None, help="this replica's consumer group")
        parser.add_argument("--dry-run", action="store_true", help="report only")
        parser.add_argument("--database", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        model = get_model(options["model"], "replica")
        kwargs = dict(
            replica_group=options["group"], using=options["database"], dry_run=options["dry_run"]
        )
        if options["file"] == "-":
            report = diff(model, sys.stdin, **kwargs)
        else:
            with open(options["file"], encoding="utf-8") as fh:
                report = diff(model, fh, **kwargs)
        self.stdout.write(
            json.dumps(
                {
                    "in_sync": report.in_sync,
                    "resync_requested": len(report.resync_requested),
                    "deleted_locally": len(report.deleted_locally),
                    "reset_locally": len(report.reset_locally),
                }
            )
        )
