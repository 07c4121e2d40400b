"""The report of benchmarks.rpc: cells, the markdown table, the targets and the settings line."""

from __future__ import annotations

import argparse
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.peers import STOCK_MAX_CONNECTIONS

OPEN_INFLIGHT = 256  # open-loop cells: most calls in flight at once
LABELS = {
    "acall": "servicebus acall",
    "call": "servicebus call (threads)",
    "stock": "channels_redis hand-rolled",
    "nats": "NATS request/reply",
}


@dataclass
class Cell:
    """One measurement: a system at one concurrency and body size."""

    system: str
    inflight: int
    size: int
    offered: float = 0.0  # open loop: calls started per second (0: closed loop)
    calls: int = 0
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1000


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and a == a and b == b else "n/a"


def summarize(
    cells: list[Cell], systems: list[str], args: argparse.Namespace, notes: list[str]
) -> str:
    closed = [c for c in cells if not c.offered]
    by = {(c.system, c.inflight, c.size): c for c in closed}
    lines = [
        "| body | in flight | "
        + " | ".join(LABELS[s] for s in systems)
        + " | acall ÷ stock | acall ÷ NATS |",
        "|---|---|" + "---|" * len(systems) + "---|---|",
    ]
    for size in args.sizes:
        for inflight in args.inflight:
            row = [human(size), str(inflight)]
            for system in systems:
                c = by.get((system, inflight, size))
                row.append(_figures(c) if c else "-")
            acall, stock, nats = (by.get((s, inflight, size)) for s in ("acall", "stock", "nats"))
            row.append(ratio(acall.rate, stock.rate) if acall and stock else "-")
            row.append(ratio(acall.rate, nats.rate) if acall and nats else "-")
            lines.append("| " + " | ".join(row) + " |")
    opened = [c for c in cells if c.offered]
    if opened:
        open_systems = [s for s in systems if any(c.system == s for c in opened)]
        lines += [
            "",
            f"Independent arrivals (open loop, Poisson, {human(min(args.sizes))}, at most "
            f"{OPEN_INFLIGHT} in flight): calls/s done · p50 · p99 ms",
            "",
            "| offered | " + " | ".join(LABELS[s] for s in open_systems) + " |",
            "|---|" + "---|" * len(open_systems),
        ]
        for rate in args.open_rates:
            row = [f"{rate:,.0f}/s"]
            for system in open_systems:
                c = next((c for c in opened if c.system == system and c.offered == rate), None)
                row.append(_figures(c) if c else "-")
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Targets (issue 10; 100 B body unless said):")
    small = min(args.sizes)

    def get(system: str, inflight: int, size: int = small) -> Cell | None:
        return by.get((system, inflight, size))

    checks = []
    for inflight in (64, 256):
        a, n = get("acall", inflight), get("nats", inflight)
        if a and n:
            checks.append(
                f"- {inflight} in flight, acall ÷ NATS: {ratio(a.rate, n.rate)} (target ≥ 2.0x)"
            )
    a1, n1, c1 = get("acall", 1), get("nats", 1), get("call", 1)
    if a1 and n1:
        checks.append(
            "- 1 in flight, acall p50 ÷ NATS p50: "
            f"{ratio(a1.pct(0.5), n1.pct(0.5))} (target ≤ 1.0x)"
        )
    if a1 and c1:
        checks.append(
            "- 1 in flight, call p50 ÷ acall p50: "
            f"{ratio(c1.pct(0.5), a1.pct(0.5))} (target ≤ 1.2x)"
        )
    if 1_000_000 in args.sizes:
        big = [
            f"{inflight}: {ratio(a.rate, n.rate)}"
            for inflight in args.inflight
            if (a := get("acall", inflight, 1_000_000)) and (n := get("nats", inflight, 1_000_000))
        ]
        if big:
            checks.append(f"- 1 MB bodies, acall ÷ NATS by in flight: {', '.join(big)} "
                          "(target ≥ 1.0x)")  # fmt: skip
    a64, s64 = get("acall", 64), get("stock", 64)
    if a64 and s64:
        checks.append(f"- 64 in flight, acall ÷ stock channels_redis: {ratio(a64.rate, s64.rate)}")
    lines.extend(checks)
    lines.extend(notes)
    return "\n".join(lines)


def _figures(c: Cell) -> str:
    return f"{c.rate:,.0f}/s · p50 {c.pct(0.5):.2f} · p99 {c.pct(0.99):.2f} ms" + (
        f" · {c.errors} errors ({c.first_error})" if c.errors else ""
    )


def settings_line(args: argparse.Namespace, loop_name: str) -> str:
    """The benchmark's own settings: what each system ran with."""
    from importlib.metadata import version

    from django.conf import settings

    from servicebus.conf import get_settings

    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]

    def v(name: str) -> str:
        try:
            return version(name)
        except Exception:
            return "?"

    return (
        f"Settings: callers on {loop_name}, workers on uvloop (runworker and the peers). "
        f"servicebus: runworker concurrency {get_settings().WORKER_CONCURRENCY}, batch "
        f"{get_settings().WORKER_BATCH}; layer capacity {config['capacity']}, max_batch "
        f"{config['max_batch']}, drain_batch {config['drain_batch']}; telemetry defaults "
        "(stats, access log with INFO off, call records, Prometheus collector, tracing hook "
        "without an OpenTelemetry SDK). "
        f"Stock channels_redis {v('channels_redis')} on redis-py {v('redis')}: capacity 2000, "
        f"max_connections {STOCK_MAX_CONNECTIONS}, one reply channel per call, the worker "
        f"answers each message in a task. NATS: nats-py {v('nats-py')}, one responder "
        "(subscription callback). Windows: at least "
        f"{args.duration:g} s and 10x the cell's p99 (at most {args.max_window:g} s), after a "
        f"{args.warmup:g} s warm-up (1.5 s with over 8 MB in flight); failing calls back off "
        "1-100 ms; errors count inside the window only."
    )


def nats_version() -> str:
    try:
        out = subprocess.run(["nats-server", "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "-"
    return out.strip().rsplit("v", 1)[-1] or "?"


def redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    return next((w[2:] for w in out.split() if w.startswith("v=")), "?")


def write_report(path: Path, report: str) -> None:
    """Replace the text between the results markers of ``path`` (or write the whole file)."""
    begin, end = "<!-- results -->", "<!-- /results -->"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        path.write_text(f"{head}{begin}\n{report}{end}{tail}")
    else:
        path.write_text(report)


def human(size: int) -> str:
    if size >= 1_000_000:
        return f"{size // 1_000_000} MB"
    if size >= 1000:
        return f"{size // 1000} KB"
    return f"{size} B"
