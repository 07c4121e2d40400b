"""``manage.py servicebus_deadletters list|retry|purge``: inspect and replay dead letters."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from servicebus.outbox.management.base import OutboxCommand
from servicebus.outbox.settings import get_outbox_settings
from servicebus.outbox.transport import (
    connect,
    deadletter_topics,
    iter_dead_letters,
    original_fields,
    purge_dead_letter,
    retry_dead_letter,
)


class Command(OutboxCommand):
    help = "List, retry (re-add to the topic stream) or purge dead-lettered events."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["list", "retry", "purge"])
        parser.add_argument("--topic", default=None, help="only this topic")
        parser.add_argument(
            "--id",
            dest="ids",
            action="append",
            default=None,
            help="only this dead-letter id (repeatable)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settings = get_outbox_settings()
        client = connect(settings)
        topics = [options["topic"]] if options["topic"] else deadletter_topics(client)
        ids = set(options["ids"] or [])
        selected = [
            (topic, dead_id, record)
            for topic, dead_id, record in iter_dead_letters(client, topics)
            if not ids or dead_id in ids
        ]
        if ids and len(selected) != len(ids):
            found = {d for _, d, _ in selected}
            raise CommandError(f"no dead letter(s) {sorted(ids - found)}; see `list`")
        action = options["action"]
        for topic, dead_id, record in selected:
            if action == "list":
                self.stdout.write(json.dumps({"topic": topic, "dead_id": dead_id, **record}))
                continue
            if action == "retry":
                if not original_fields(record):
                    raise CommandError(f"dead letter {dead_id} kept no original fields; purge it")
                # Every group on the stream sees it again; inboxes skip groups that processed it.
                retry_dead_letter(client, topic, dead_id, settings.STREAM_MAXLEN)
            else:
                purge_dead_letter(client, topic, dead_id)
        if action != "list":
            self.stdout.write(f"{action}: {len(selected)} dead letter(s)")
