"""``manage.py servicebus_dump app.Model [--keys-only] > file``: bulk copy of a source model."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from servicebus.outbox.management.base import OutboxCommand
from servicebus.outbox.replication import get_model
from servicebus.outbox.sync import dump


class Command(OutboxCommand):
    help = "Write a source model as JSON lines (for servicebus_load, or servicebus_diff)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="app_label.ModelName of a SourceModel")
        parser.add_argument("--keys-only", action="store_true", help="only (key, revision)")
        parser.add_argument("--database", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        model = get_model(options["model"], "source")
        count = dump(model, self.stdout, keys_only=options["keys_only"], using=options["database"])
        self.stderr.write(f"dumped {count} row(s) of {options['model']}")
