"""``manage.py servicebus_load app.ReplicaModel < file``: initial copy into a replica."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandParser

from servicebus.outbox.management.base import OutboxCommand
from servicebus.outbox.replication import get_model
from servicebus.outbox.sync import load


class Command(OutboxCommand):
    help = "Apply a servicebus_dump file to a replica model (older revisions are ignored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="app_label.ModelName of a ReplicaModel")
        parser.add_argument("--file", default="-", help="dump file (default: stdin)")
        parser.add_argument("--database", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        model = get_model(options["model"], "replica")
        if options["file"] == "-":
            counts = load(model, sys.stdin, using=options["database"])
        else:
            with open(options["file"], encoding="utf-8") as fh:
                counts = load(model, fh, using=options["database"])
        self.stdout.write(", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty dump")
