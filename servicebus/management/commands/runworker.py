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
from servicebus.telemetry.runtime import WorkerTelemetry
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
        parser.add_argument(
            "--metrics-port",
            default=None,
            metavar="[ADDR:]PORT",
            help="Serve Prometheus metrics on GET /metrics (address default 127.0.0.1; "
            "needs servicebus[prometheus]).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from channels.routing import get_default_application

        concurrency = options["concurrency"]
        if concurrency is not None and concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        if options["metrics_port"] is not None:
            from servicebus.telemetry.prometheus import parse_address, prometheus_client

            try:
                parse_address(options["metrics_port"])
            except ValueError:
                raise CommandError("--metrics-port takes PORT or ADDR:PORT") from None
            if prometheus_client is None:
                raise CommandError(
                    "--metrics-port needs prometheus_client (servicebus[prometheus])"
                )
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
            telemetry = WorkerTelemetry(
                transport.layer,
                targets,
                concurrency=worker.concurrency,
                metrics_port=options["metrics_port"],
                ready=worker.started,
            )
            try:
                # Heartbeat, call records and /metrics beside the handlers (never blocking them).
                async with telemetry:
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
