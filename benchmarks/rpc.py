"""RPC benchmark: servicebus acall and call against stock channels_redis and NATS, one run.

    python -m benchmarks.rpc                      # the full grid (about 3 minutes)
    python -m benchmarks.rpc --quick              # 100 B only, shorter cells
    python -m benchmarks.rpc --write docs/benchmarks.md

One caller process (this one) and one worker process per system, echo handler, a private
redis-server on a free port, the machine's nats-server on 127.0.0.1:4222 when it answers.
Figures on a shared machine are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peers import NATS_SUBJECT, STOCK_CHANNEL, stock_layer  # noqa: E402
from tests.support.processes import ManagedProcess  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

SYSTEMS = ("acall", "call", "stock", "nats")
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


def nats_answers(url: str) -> bool:
    host, port = url.split("//")[-1].split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def window(cell: Cell, args: argparse.Namespace) -> tuple[float, float]:
    """Measured seconds and warm-up for a cell: longer when many MB are in flight."""
    if cell.size * cell.inflight > 8_000_000:
        return max(args.duration, 4.0), max(args.warmup, 1.5)
    return args.duration, args.warmup


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:80]


async def run_async_cell(
    call: Callable[[], Awaitable[Any]], cell: Cell, duration: float, warmup: float
) -> None:
    """Keep ``cell.inflight`` calls in flight for warmup + duration seconds."""
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def loop() -> None:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                await call()
            except Exception as exc:
                cell.errors += 1
                cell.first_error = cell.first_error or _describe(exc)
                continue
            t1 = time.perf_counter()
            # Count calls that completed inside the window (with 1 MB bodies at 256 in
            # flight one call can outlast the whole window).
            if measure_from <= t1 <= stop_at:
                cell.latencies.append(t1 - t0)

    await asyncio.gather(*(loop() for _ in range(cell.inflight)))
    cell.calls = len(cell.latencies)
    cell.seconds = duration


def run_thread_cell(call: Callable[[], Any], cell: Cell, duration: float, warmup: float) -> None:
    """Like run_async_cell, with one blocking thread per call in flight."""
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    lock = threading.Lock()

    def loop() -> None:
        mine: list[float] = []
        errors = 0
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                break
            try:
                call()
            except Exception as exc:
                errors += 1
                cell.first_error = cell.first_error or _describe(exc)
                continue
            t1 = time.perf_counter()
            if measure_from <= t1 <= stop_at:
                mine.append(t1 - t0)
        with lock:
            cell.latencies.extend(mine)
            cell.errors += errors

    with ThreadPoolExecutor(cell.inflight) as pool:
        for future in [pool.submit(loop) for _ in range(cell.inflight)]:
            future.result()
    cell.calls = len(cell.latencies)
    cell.seconds = duration


class Bench:
    """Starts Redis and the workers, then measures every requested cell."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.redis = RedisServer()
        self.procs: list[ManagedProcess] = []
        self.systems = list(args.systems)
        self.notes: list[str] = []

    def start(self) -> None:
        self.redis.start()
        url = self.redis.url
        os.environ["BENCH_REDIS_URL"] = url
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.project.settings"
        import django

        django.setup()
        env = {"BENCH_REDIS_URL": url, "DJANGO_SETTINGS_MODULE": "benchmarks.project.settings"}
        py = sys.executable
        if {"acall", "call"} & set(self.systems):
            self._spawn(
                [py, "-m", "django", "runworker", "bench.request"],
                env,
                "worker serving",
                "servicebus",
            )
        if "stock" in self.systems:
            self._spawn([py, "-m", "benchmarks.peers", "stock", url], env, "ready", "stock")
        if "nats" in self.systems:
            if nats_answers(self.args.nats):
                self._spawn(
                    [py, "-m", "benchmarks.peers", "nats", self.args.nats], env, "ready", "nats"
                )
            else:
                self.systems.remove("nats")
                self.notes.append(f"NATS skipped: no nats-server answers at {self.args.nats}.")

    def _spawn(self, args: list[str], env: dict[str, str], ready: str, name: str) -> None:
        proc = ManagedProcess(args, env=env, cwd=ROOT, name=name)
        proc.start(ready=ready, timeout=60)
        self.procs.append(proc)

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.redis.stop()

    async def measure_async(self, cells: list[Cell]) -> None:
        stock = stock_layer(self.redis.url)
        nc = None
        if "nats" in self.systems:
            import nats

            nc = await nats.connect(self.args.nats, max_reconnect_attempts=1)
        for cell in cells:
            call = self._async_caller(cell.system, b"x" * cell.size, stock, nc)
            await run_async_cell(call, cell, *window(cell, self.args))
            self.report(cell)
        if nc is not None:
            await nc.close()
        await stock.close_pools()

    @staticmethod
    def _async_caller(
        system: str, body: bytes, stock: Any, nc: Any
    ) -> Callable[[], Awaitable[Any]]:
        """One call of ``system`` with ``body``, as a coroutine function."""
        import servicebus

        async def acall() -> Any:
            return await servicebus.acall("bench.request", "echo", body, timeout=30)

        async def stock_call() -> Any:
            # Hand-rolled RPC as teams write it on the stock layer: a reply channel per call.
            channel = await stock.new_channel()
            await stock.send(STOCK_CHANNEL, {"type": "echo", "reply": channel, "body": body})
            # The stock layer can lose a reply; bound the wait like the other systems.
            return await asyncio.wait_for(stock.receive(channel), 30)

        async def nats_call() -> Any:
            return await nc.request(NATS_SUBJECT, body, timeout=30)

        return {"acall": acall, "stock": stock_call, "nats": nats_call}[system]

    def measure_sync(self, cells: list[Cell]) -> None:
        import servicebus

        for cell in cells:
            if cell.system != "call":
                continue
            body = b"x" * cell.size
            run_thread_cell(
                lambda body=body: servicebus.call("bench.request", "echo", body, timeout=30),
                cell,
                *window(cell, self.args),
            )
            self.report(cell)

    def report(self, cell: Cell) -> None:
        print(
            f"  {LABELS[cell.system]:<28} size={cell.size:>8} inflight={cell.inflight:>3} "
            f"{cell.rate:>9.0f} calls/s  p50 {cell.pct(0.5):7.2f} ms  p99 {cell.pct(0.99):7.2f} ms"
            + (f"  errors={cell.errors} ({cell.first_error})" if cell.errors else ""),
            flush=True,
        )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and a == a and b == b else "n/a"


def summarize(
    cells: list[Cell], systems: list[str], args: argparse.Namespace, notes: list[str]
) -> str:
    by = {(c.system, c.inflight, c.size): c for c in cells}
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
                row.append(
                    f"{c.rate:,.0f}/s · p50 {c.pct(0.5):.2f} · p99 {c.pct(0.99):.2f} ms"
                    + (f" · {c.errors} errors ({c.first_error})" if c.errors else "")
                    if c
                    else "-"
                )
            acall, stock, nats = (by.get((s, inflight, size)) for s in ("acall", "stock", "nats"))
            row.append(ratio(acall.rate, stock.rate) if acall and stock else "-")
            row.append(ratio(acall.rate, nats.rate) if acall and nats else "-")
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Targets (100 B body):")
    small = min(args.sizes)

    def get(system: str, inflight: int) -> Cell | None:
        return by.get((system, inflight, small))

    checks = []
    a64, s64, n64 = get("acall", 64), get("stock", 64), get("nats", 64)
    if a64 and s64:
        checks.append(
            "- 64 in flight, acall ÷ stock channels_redis: "
            f"{ratio(a64.rate, s64.rate)} (target ≥ 12x)"
        )
    if a64 and n64:
        checks.append(f"- 64 in flight, acall ÷ NATS: {ratio(a64.rate, n64.rate)} (target ≥ 1.0x)")
    a1, n1, c1 = get("acall", 1), get("nats", 1), get("call", 1)
    if a1 and n1:
        checks.append(
            "- 1 in flight, acall p50 ÷ NATS p50: "
            f"{ratio(a1.pct(0.5), n1.pct(0.5))} (target ≤ 1.5x)"
        )
    if a1 and c1:
        checks.append(
            "- 1 in flight, call p50 ÷ acall p50: "
            f"{ratio(c1.pct(0.5), a1.pct(0.5))} (target ≤ 1.3x)"
        )
    lines.extend(checks)
    lines.extend(notes)
    return "\n".join(lines)


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--inflight", default="1,16,64,256")
    parser.add_argument("--sizes", default="100,10000,1000000")
    parser.add_argument("--duration", type=float, default=2.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--quick", action="store_true", help="100 B only, 1 s cells")
    parser.add_argument("--write", help="write the markdown report to this file")
    args = parser.parse_args(argv)
    args.systems = [s for s in args.systems.split(",") if s]
    args.inflight = [int(x) for x in args.inflight.split(",")]
    args.sizes = [int(x) for x in args.sizes.split(",")]
    if args.quick:
        args.sizes, args.duration = [100], 1.0
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    bench = Bench(args)
    cells: list[Cell] = []
    try:
        bench.start()
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:
            runner = asyncio.run
        for size in args.sizes:
            for inflight in args.inflight:
                print(f"body {human(size)}, {inflight} in flight", flush=True)
                # Interleave systems per cell so drift on a shared machine hits all alike.
                row = [Cell(s, inflight, size) for s in bench.systems]
                runner(bench.measure_async([c for c in row if c.system != "call"]))
                bench.measure_sync([c for c in row if c.system == "call"])
                cells.extend(row)
    finally:
        bench.stop()
    summary = summarize(cells, bench.systems, args, bench.notes)
    print()
    print(summary)
    if args.write:
        command = "python -m benchmarks.rpc " + " ".join(argv if argv is not None else sys.argv[1:])
        header = (
            f"Command: `{command.strip()}`  \n"
            f"Run: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}, "
            f"redis-server {redis_version()}; p50/p99 over every call of each "
            f"{args.duration:g} s cell (4 s after a 1.5 s warm-up with over 8 MB in flight).\n\n"
        )
        write_report(Path(args.write), header + summary + "\n")


if __name__ == "__main__":
    main()
