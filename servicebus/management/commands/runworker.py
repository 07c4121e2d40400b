"""``manage.py runworker``: servicebus's concurrent, draining worker.

Shipped by the servicebus app the way daphne ships runserver: list ``servicebus``
before ``channels`` in INSTALLED_APPS so this command wins.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.management import BaseCommand, CommandError, CommandParser

from servicebus.conf import get_settings
from servicebus.errors import BusMisconfigured, ServiceBusError
from servicebus.runner import run_async_main
from servicebus.transport import get_transport
from servicebus.worker import Worker, resolve_targets

logger = logging.getLogger("servicebus.worker")


class Command(BaseCommand):
    """Serve request channels with bounded concurrency; SIGTERM drains and exits 0."""

    help = "Serve servicebus request channels (and other channel consumers) concurrently."
    leave_locale_alone = True

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("channels", nargs="+", help="Channels to listen on.")
        parser.add_argument(
            "--layer",
            default=None,
            help="Channel layer alias (default SERVICEBUS['CHANNEL_LAYER']).",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="Requests handled at once (default SERVICEBUS['WORKER_CONCURRENCY']).",
        )
        parser.add_argument(
            "--drain-timeout",
            type=float,
            default=None,
            help="Seconds to finish in-flight requests after SIGTERM.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from channels.routing import get_default_application

        concurrency = options["concurrency"]
        if concurrency is not None and concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        try:
            transport = get_transport(options["layer"])
        except ServiceBusError as exc:
            raise CommandError(str(exc)) from None
        try:
            targets = resolve_targets(get_default_application(), options["channels"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        worker = Worker(
            transport,
            targets,
            concurrency=concurrency or get_settings().WORKER_CONCURRENCY,
            drain_timeout=options["drain_timeout"],
        )

        async def main() -> None:
            worker.runner.install_signal_handlers()
            try:
                await worker.run()
            finally:
                try:
                    await transport.close()
                except Exception as exc:  # closing must not turn a clean stop into a crash
                    logger.warning("closing the channel layer failed: %r", exc)

        try:
            run_async_main(main())
        except BusMisconfigured as exc:
            # Retrying cannot fix it: exit non-zero with one line that says what to fix.
            raise CommandError(f"cannot serve {', '.join(targets)}: {exc}") from None
