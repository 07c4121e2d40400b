"""RPC benchmark: servicebus acall and call against stock channels_redis and NATS, one run.

    python -m benchmarks.rpc                      # the full grid (about 8 minutes)
    python -m benchmarks.rpc --quick              # 100 B only, shorter cells
    python -m benchmarks.rpc --write docs/benchmarks.md

One caller process (this one) and one worker process per system, echo handler, a private
redis-server on a free port, the machine's nats-server on 127.0.0.1:4222 when it answers.
Figures on a shared machine are noisy: compare the ratios within one run.

Two arrival patterns: the grid is a closed loop (each of N callers starts its next call
when its reply arrives: replies that arrive together start their next calls in one
event-loop tick, the best case for servicebus's coalesced sends); ``--open-rates``
adds cells where calls start at Poisson-distributed times at a given rate, independent
of the replies (at most 256 in flight). A failing call backs off (1 ms, doubling to
100 ms) before its caller tries again; calls and errors count only inside the window.
A cell's window lasts ``--duration`` seconds, and at least 10x the p99 latency seen so
far (up to ``--max-window``), so slow cells (1 MB x 256) measure many calls per caller.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import random
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peers import (  # noqa: E402
    NATS_SUBJECT,
    STOCK_CHANNEL,
    stock_layer,
)
from benchmarks.rpc_report import (  # noqa: E402
    LABELS,
    OPEN_INFLIGHT,
    Cell,
    human,
    nats_version,
    redis_version,
    settings_line,
    summarize,
    write_report,
)
from servicebus.backoff import Backoff  # noqa: E402
from tests.support.processes import ManagedProcess  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

SYSTEMS = ("acall", "call", "stock", "nats")


def nats_answers(url: str) -> bool:
    host, port = url.split("//")[-1].split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def window(cell: Cell, args: argparse.Namespace) -> tuple[float, float, float]:
    """(least measured seconds, warm-up, most measured seconds) of a cell."""
    warmup = max(args.warmup, 1.5) if cell.size * cell.inflight > 8_000_000 else args.warmup
    return args.duration, warmup, max(args.duration, args.max_window)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:80]


class Window:
    """When a cell measures: after the warm-up, for at least ``least`` seconds and 10x the
    p99 latency seen so far, at most ``most`` seconds."""

    def __init__(self, cell: Cell, least: float, warmup: float, most: float) -> None:
        self.cell = cell
        self.least, self.most = least, most
        self.start = time.perf_counter() + warmup
        self.stop = self.start + least
        self._checked = 0.0

    def extend(self, now: float) -> None:
        """Near the end, push it out to 10x the p99 so far (one sort per end reached)."""
        if now < self.stop - 0.2 or self._checked == self.stop:
            return
        self._checked = self.stop
        lat = self.cell.latencies
        p99 = sorted(lat)[int(len(lat) * 0.99)]
        self.stop = max(self.stop, self.start + min(self.most, 10 * p99))

    def close(self) -> None:
        self.cell.calls = len(self.cell.latencies)
        self.cell.seconds = self.stop - self.start


def _failed(cell: Cell, win: Window, exc: BaseException, at: float) -> None:
    if win.start <= at <= win.stop:  # errors of the warm-up are not counted
        cell.errors += 1
        cell.first_error = cell.first_error or _describe(exc)


async def run_async_cell(
    call: Callable[[], Awaitable[Any]],
    cell: Cell,
    duration: float,
    warmup: float,
    most: float | None = None,
) -> None:
    """Keep ``cell.inflight`` calls in flight for the warm-up and the window."""
    win = Window(cell, duration, warmup, duration if most is None else most)

    async def loop() -> None:
        backoff = Backoff(0.001, 0.1, jitter=0)  # 1 ms, doubling to 100 ms
        while True:
            t0 = time.perf_counter()
            if t0 >= win.stop:
                return
            try:
                await call()
            except Exception as exc:
                _failed(cell, win, exc, time.perf_counter())
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            t1 = time.perf_counter()
            # Count calls that completed inside the window (with 1 MB bodies at 256 in
            # flight one call can outlast a short window).
            if win.start <= t1 <= win.stop:
                cell.latencies.append(t1 - t0)
                win.extend(t1)

    await asyncio.gather(*(loop() for _ in range(cell.inflight)))
    win.close()


async def run_open_cell(
    call: Callable[[], Awaitable[Any]], cell: Cell, rate: float, duration: float, warmup: float
) -> None:
    """Start calls at Poisson times, ``rate`` a second (at most ``cell.inflight`` at once)."""
    win = Window(cell, duration, warmup, duration)
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(cell.inflight)
    rng = random.Random(7)
    running: set[asyncio.Task[None]] = set()

    async def one(t0: float) -> None:
        try:
            async with slots:
                await call()
        except Exception as exc:
            _failed(cell, win, exc, time.perf_counter())
            return
        t1 = time.perf_counter()
        if win.start <= t1 <= win.stop:
            cell.latencies.append(t1 - t0)

    due = time.perf_counter()
    while due < win.stop:
        due += rng.expovariate(rate)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = loop.create_task(one(time.perf_counter()))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.wait(running, timeout=35)
    win.close()


def run_thread_cell(
    call: Callable[[], Any], cell: Cell, duration: float, warmup: float, most: float | None = None
) -> None:
    """Like run_async_cell, with one blocking thread per call in flight."""
    win = Window(cell, duration, warmup, duration if most is None else most)
    lock = threading.Lock()

    def loop() -> None:
        backoff = Backoff(0.001, 0.1, jitter=0)  # 1 ms, doubling to 100 ms
        while True:
            t0 = time.perf_counter()
            if t0 >= win.stop:
                break
            try:
                call()
            except Exception as exc:
                with lock:
                    _failed(cell, win, exc, time.perf_counter())
                time.sleep(backoff.next())
                continue
            backoff.reset()
            t1 = time.perf_counter()
            if win.start <= t1 <= win.stop:
                with lock:
                    cell.latencies.append(t1 - t0)
                    win.extend(t1)

    with ThreadPoolExecutor(cell.inflight) as pool:
        for future in [pool.submit(loop) for _ in range(cell.inflight)]:
            future.result()
    win.close()


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
            if cell.offered:
                await run_open_cell(call, cell, cell.offered, self.args.duration, self.args.warmup)
            else:
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
        offered = f" offered={cell.offered:>6.0f}/s" if cell.offered else ""
        print(
            f"  {LABELS[cell.system]:<28} size={cell.size:>8} inflight={cell.inflight:>3}{offered} "
            f"{cell.rate:>9.0f} calls/s  p50 {cell.pct(0.5):7.2f} ms  p99 {cell.pct(0.99):7.2f} ms"
            + (f"  errors={cell.errors} ({cell.first_error})" if cell.errors else ""),
            flush=True,
        )


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
    parser.add_argument(
        "--max-window", type=float, default=60.0, help="longest measured seconds of a cell"
    )
    parser.add_argument(
        "--open-rates",
        default="5000,20000",
        help="open-loop cells: calls started per second, Poisson (empty: none)",
    )
    parser.add_argument("--quick", action="store_true", help="100 B only, 1 s cells")
    parser.add_argument("--write", help="write the markdown report to this file")
    args = parser.parse_args(argv)
    args.systems = [s for s in args.systems.split(",") if s]
    args.inflight = [int(x) for x in args.inflight.split(",")]
    args.sizes = [int(x) for x in args.sizes.split(",")]
    args.open_rates = [float(x) for x in args.open_rates.split(",") if x]
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
            loop_name = "uvloop"
        except ImportError:
            runner, loop_name = asyncio.run, "asyncio"
        settings_text = settings_line(args, loop_name)
        print(settings_text, flush=True)
        for size in args.sizes:
            for inflight in args.inflight:
                print(f"body {human(size)}, {inflight} in flight", flush=True)
                # Interleave systems per cell so drift on a shared machine hits all alike.
                row = [Cell(s, inflight, size) for s in bench.systems]
                runner(bench.measure_async([c for c in row if c.system != "call"]))
                bench.measure_sync([c for c in row if c.system == "call"])
                cells.extend(row)
        for rate in args.open_rates:
            print(f"body {human(min(args.sizes))}, open loop at {rate:,.0f}/s", flush=True)
            row = [
                Cell(s, OPEN_INFLIGHT, min(args.sizes), offered=rate)
                for s in bench.systems
                if s != "call"
            ]
            runner(bench.measure_async(row))
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
            f"redis-server {redis_version()}, nats-server {nats_version()}; p50/p99 over every "
            "call completed in each cell's window.  \n"
            f"{settings_text}\n\n"
        )
        write_report(Path(args.write), header + summary + "\n")


if __name__ == "__main__":
    main()
