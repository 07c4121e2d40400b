"""``manage.py servicebus_relay``: publish unpublished outbox rows to Redis Streams."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from servicebus.outbox.relay import Relay


class Command(BaseCommand):
    help = "Publish outbox events to Redis continuously (safe to run several at once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="drain once, prune, and exit")
        parser.add_argument("--database", default=None, help="database alias of the outbox")

    def handle(self, *args: Any, **options: Any) -> None:
        relay = Relay(using=options["database"])
        relay.install_signal_handlers()
        result = relay.run(once=options["once"])
        self.stdout.write(f"published {result.published}, failed {result.failed}")
