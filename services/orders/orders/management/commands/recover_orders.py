"""``manage.py recover_orders``: finish or undo orders a crash left pending (recovery.py)."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from orders.recovery import recover_after, recover_pending


class Command(BaseCommand):
    """One pass, or (``--every N``) a pass every N seconds until SIGTERM/SIGINT."""

    help = "Finish (charged) or undo (not charged) orders left pending by a crash."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=None,
            help="seconds an order must have been pending (default ORDERS_RECOVER_AFTER, 120)",
        )
        parser.add_argument("--every", type=float, default=0, help="repeat every N seconds")
        parser.add_argument("--limit", type=int, default=100, help="orders per pass")

    def handle(self, *args, **options) -> None:
        stop = threading.Event()
        if options["every"]:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            older = options["older_than"] if options["older_than"] is not None else recover_after()
            self.stdout.write(
                f"recovery started: every {options['every']} s, orders pending over {older} s"
            )
        while True:
            counts = recover_pending(options["older_than"], options["limit"])
            if any(counts.values()) or not options["every"]:
                self.stdout.write(
                    "recovered: {confirmed} confirmed, {failed} failed, {left} left".format(
                        **counts
                    )
                )
            if not options["every"] or stop.wait(options["every"]):
                return
