"""``manage.py servicebus_consume``: run the registered ``@subscriber`` handlers."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from servicebus.outbox.consumer import Consumer
from servicebus.outbox.management.base import OutboxCommand


class Command(OutboxCommand):
    help = "Consume durable events as a member of a consumer group (XACK after commit)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--group", default=None, help="consumer group (default: service name)")
        parser.add_argument("--topic", action="append", default=None, help="only these topics")
        parser.add_argument("--once", action="store_true", help="exit when nothing is left")
        parser.add_argument("--database", default=None, help="database alias of the inbox")

    def handle(self, *args: Any, **options: Any) -> None:
        consumer = Consumer(options["group"], options["topic"], using=options["database"])
        consumer.install_signal_handlers()
        result = consumer.run(once=options["once"])
        self.stdout.write(
            f"handled {result.handled}, duplicates {result.duplicates}, "
            f"failed {result.failed}, dead-lettered {result.dead_lettered}"
        )
