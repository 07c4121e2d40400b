"""``manage.py servicebus_status [--json] [--watch SECONDS]``: the bus at a glance."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from django.core.management import BaseCommand, CommandError, CommandParser

from servicebus.telemetry import read
from servicebus.telemetry.store import Store, get_store


async def collect(store: Store | None) -> dict[str, Any]:
    """One status snapshot: services (from the registry), event streams, outbox, dead letters."""
    status: dict[str, Any] = {"time": time.time(), "services": []}
    if store is None:
        status["error"] = "the channel layer is not Redis: there is no instance registry"
    else:
        try:
            status["services"] = (await read.overview(store))["services"]
        except Exception as exc:
            status["error"] = f"cannot read the registry: {exc!r}"
    events = await asyncio.to_thread(read.events)
    status.update(
        streams=events["streams"], outbox=events["outbox"], dead_letters=events["dead_letters"]
    )
    if "error" in events:
        status["events_error"] = events["error"]
    return status


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _ratio(value: Any, limit: Any) -> str:
    return f"{'-' if value is None else value}/{'-' if limit is None else limit}"


def render(status: dict[str, Any]) -> str:
    """The snapshot as text for a terminal."""
    when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(status["time"]))
    lines = [f"servicebus status at {when}", ""]
    if status.get("error"):
        lines += [f"registry: {status['error']}", ""]
    header = ("SERVICE", "INSTANCES", "IN-FLIGHT", "BACKLOG", "CALLS/S", "ERRORS/S", "P50", "P99")
    rows = [header]
    for svc in status["services"]:
        live = [i for i in svc["instances"] if not i["stale"]]
        rows.append(
            (
                svc["name"],
                f"{len(live)}" + (f" (+{len(svc['instances']) - len(live)} stale)"
                                  if len(live) < len(svc["instances"]) else ""),
                _ratio(svc["in_flight"], svc["concurrency"]),
                _ratio(svc["backlog"], svc["capacity"]),
                f"{svc['calls_per_s']:.2f}",
                f"{svc['errors_per_s']:.2f}",
                _ms(svc["p50_ms"]),
                _ms(svc["p99_ms"]),
            )
        )  # fmt: skip
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            continue
        for inst in status["services"][n - 1]["instances"]:
            lines.append(
                f"    {inst['instance']}  pid {inst['pid']}  up {_duration(inst['uptime'])}  "
                f"in-flight {_ratio(inst['in_flight'], inst['concurrency'])}  "
                f"last beat {inst['age']:.0f}s ago" + ("  STALE" if inst["stale"] else "")
            )
    if not status["services"]:
        lines.append("(no instance registered: is a runworker running on this Redis?)")
    lines += ["", "EVENT STREAMS"]
    if status.get("events_error"):
        lines.append(f"  {status['events_error']}")
    for stream in status["streams"]:
        groups = ", ".join(
            f"{g['name']}: lag {g['lag']}, pending {g['pending']}" for g in stream["groups"]
        )
        lines.append(f"  {stream['topic']}  length {stream['length']}  {groups or 'no groups'}")
    if not status["streams"] and not status.get("events_error"):
        lines.append("  none")
    outbox = status["outbox"]
    if outbox is None:
        lines.append("OUTBOX  not installed")
    elif "error" in outbox:
        lines.append(f"OUTBOX  {outbox['error']}")
    else:
        lines.append(f"OUTBOX  {outbox['pending']} pending (oldest {outbox['oldest_age']:.0f}s)")
    dead = ", ".join(f"{d['topic']}: {d['count']}" for d in status["dead_letters"] if d["count"])
    lines.append(f"DEAD LETTERS  {dead or 'none'}")
    return "\n".join(lines)


class Command(BaseCommand):
    """Print every service with its instances, backlog, rates and latency; streams; outbox."""

    help = (
        "Show every service with its instances (host, pid, uptime, in-flight/concurrency), "
        "request-channel backlog against capacity, calls/s, errors/s, p50/p99 over the last "
        "minute; event streams with consumer-group lag and pending; outbox backlog; dead letters."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        parser.add_argument(
            "--watch", type=float, default=None, metavar="SECONDS", help="Refresh every SECONDS."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        watch = options["watch"]
        if watch is not None and watch <= 0:
            raise CommandError("--watch needs a positive number of seconds")
        try:
            asyncio.run(self._run(options["json"], watch))
        except KeyboardInterrupt:
            pass

    async def _run(self, as_json: bool, watch: float | None) -> None:
        store = get_store()
        try:
            while True:
                status = await collect(store)
                if as_json:
                    self.stdout.write(json.dumps(status, default=str))
                else:
                    if watch is not None and sys.stdout.isatty():
                        self.stdout.write("\x1b[2J\x1b[H", ending="")
                    self.stdout.write(render(status))
                if watch is None:
                    return
                self.stdout.flush()
                await asyncio.sleep(watch)
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                await close()
