"""``manage.py servicebus_resync app.Model [--filter f=v] [--replica group]``: republish state."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from servicebus.outbox.management.base import OutboxCommand
from servicebus.outbox.replication import get_model, resync


class Command(OutboxCommand):
    help = "Republish current rows of a source model through the outbox (all or one replica)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="app_label.ModelName of a SourceModel")
        parser.add_argument(
            "--filter", action="append", default=[], help="field=value (repeatable)"
        )
        parser.add_argument("--key", action="append", default=None, help="only this key")
        parser.add_argument("--replica", default=None, help="only this consumer group applies it")
        parser.add_argument("--database", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        model = get_model(options["model"], "source")
        filters: dict[str, str] = {}
        for item in options["filter"]:
            name, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--filter {item!r}: write it as field=value")
            filters[name] = value
        count = resync(
            model,
            filters=filters,
            keys=options["key"],
            replica_group=options["replica"],
            using=options["database"],
        )
        self.stdout.write(f"republished {count} row(s) of {options['model']}")
