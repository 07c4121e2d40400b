"""``manage.py servicebus_relay``: publish unpublished outbox rows to Redis Streams."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from servicebus.outbox.management.base import OutboxCommand
from servicebus.outbox.relay import Relay, backlog


class Command(OutboxCommand):
    help = "Publish outbox events to Redis continuously (safe to run several at once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="drain once, prune, and exit")
        parser.add_argument("--database", default=None, help="database alias of the outbox")
        parser.add_argument(
            "--check-backlog",
            type=float,
            metavar="SECONDS",
            default=None,
            help="publish nothing; exit 1 if an unpublished event is older (is a relay running?)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["check_backlog"] is not None:
            count, age = backlog(using=options["database"])
            self.stdout.write(f"unpublished {count}, oldest {age:.1f}s")
            if age > options["check_backlog"]:
                raise CommandError(
                    f"the oldest unpublished event is {age:.0f}s old: start servicebus_relay "
                    "(or check its logs and Redis)"
                )
            return
        relay = Relay(using=options["database"])
        relay.install_signal_handlers()
        result = relay.run(once=options["once"])
        self.stdout.write(f"published {result.published}, failed {result.failed}")
