"""``manage.py servicebus_call SERVICE METHOD [BODY_JSON | -]``: call a method from a shell."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from django.core.management import BaseCommand, CommandError, CommandParser

from servicebus.conf import request_channel


def channel_of(service: str) -> str:
    """``inventory`` -> ``inventory.request``; a name with a dot is already a channel."""
    return service if "." in service else request_channel(service)


def parse_headers(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``; a pair without ``=`` is an error."""
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CommandError(f"--header {pair!r}: use NAME=VALUE")
        headers[name] = value
    return headers


class Command(BaseCommand):
    """Send one request and print the reply body as JSON (a bus error exits 1)."""

    help = (
        "Call METHOD on SERVICE (a service name like 'inventory' or a channel like "
        "'inventory.request') and print the reply body as JSON. BODY_JSON is a JSON value, "
        "or '-' to read it from stdin. A bus error prints 'code: message' on stderr, exit 1."
    )
    # A call needs no system checks beyond the defaults; keep them (a broken setup is news).

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("service", help="Service name or request channel.")
        parser.add_argument("method", help="Method name (e.g. allocate, _ping, _info, _stats).")
        parser.add_argument("body", nargs="?", default=None, help="Body as JSON, or '-'.")
        parser.add_argument("--timeout", type=float, default=None, help="Seconds to wait.")
        parser.add_argument(
            "--header", action="append", default=[], metavar="NAME=VALUE", help="A header."
        )
        parser.add_argument("--flag", action="append", default=[], help="A feature flag.")
        parser.add_argument(
            "--correlation-id", default=None, help="Correlation ID (default: a new one)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        import servicebus
        from servicebus.errors import ServiceBusError

        raw = options["body"]
        if raw == "-":
            raw = sys.stdin.read()
        try:
            body = None if raw is None else json.loads(raw)
        except ValueError as exc:
            raise CommandError(f"BODY_JSON is not JSON: {exc}") from None
        headers = parse_headers(options["header"])
        cid = options["correlation_id"] or uuid.uuid4().hex
        try:
            with servicebus.bind(cid):
                reply = servicebus.call(
                    channel_of(options["service"]),
                    options["method"],
                    body,
                    timeout=options["timeout"],
                    headers=headers,
                    flags=options["flag"],
                )
        except ServiceBusError as exc:
            self.stderr.write(f"{exc.code}: {exc.message}")
            if exc.hint and exc.hint not in exc.message:
                self.stderr.write(f"hint: {exc.hint}")
            self.stderr.write(f"correlation id: {cid}")
            sys.exit(1)
        self.stdout.write(json.dumps(reply, indent=2, sort_keys=True, default=str))
