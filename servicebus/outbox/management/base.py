"""Base class of the outbox commands: named outbox errors become clean command errors."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from servicebus.outbox.errors import OutboxError


class OutboxCommand(BaseCommand):
    """A management command that reports OutboxError as a message, not a traceback."""

    def execute(self, *args: Any, **options: Any) -> str | None:
        """Run the command; an OutboxError exits with its message (status 1)."""
        try:
            return super().execute(*args, **options)
        except OutboxError as exc:
            raise CommandError(str(exc)) from exc
