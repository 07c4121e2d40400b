"""Scaling benchmark: calls/s and CPU per call with 1, 2 and 4 worker processes, on one
Redis and on a 3-master Redis Cluster.

    python -m benchmarks.scale              # 2 topologies x 3 worker counts, 3 s each (~1 min)
    python -m benchmarks.scale --quick      # 1 s each (~30 s)
    python -m benchmarks.scale --workers 1,2 --topologies cluster --duration 5
    python -m benchmarks.scale --no-telemetry   # without the default telemetry hooks

Two caller processes keep 64 calls each in flight (``echo`` of {"sku": "A1", "qty": 1})
over six request channels, two on each cluster master (the same six names on one Redis).
Every worker serves all six. CPU is utime+stime from /proc of every process (the
redis-servers, the workers, the callers) over the measured window, divided by the calls
answered in it: far steadier on a shared machine than the rate. The cluster has no
replicas here (a replica costs its master CPU for the replication stream; not measured).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import ManagedProcess  # noqa: E402
from tests.support.redis_cluster import RedisCluster  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

SETTINGS = "benchmarks.scale_project.settings"
BODY = {"sku": "A1", "qty": 1}
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Cell:
    """One measurement: a topology and a number of worker processes."""

    topology: str
    workers: int
    calls: int = 0
    errors: int = 0
    seconds: float = 0.0
    redis_cpu: float = 0.0
    worker_cpu: float = 0.0
    caller_cpu: float = 0.0
    scripts: int = 0  # EVALSHA/EVAL calls Redis ran (coalesced sends)
    pops: int = 0  # BZMPOP/ZMPOP calls
    first_error: str = ""

    def per_call_us(self, cpu: float) -> float:
        return cpu / self.calls * 1e6 if self.calls else float("nan")

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def row(self) -> str:
        total = self.redis_cpu + self.worker_cpu + self.caller_cpu
        return (
            f"| {self.topology} | {self.workers} | {self.rate:,.0f} | "
            f"{self.per_call_us(self.redis_cpu):.1f} | {self.redis_cpu / self.seconds:.2f} | "
            f"{self.per_call_us(self.worker_cpu):.1f} | {self.per_call_us(self.caller_cpu):.1f} | "
            f"{self.per_call_us(total):.1f} | {self.scripts / max(1, self.calls):.2f} | "
            f"{self.pops / max(1, self.calls):.2f} | {self.errors} |"
        )


HEADER = (
    "| Redis | workers | calls/s | Redis CPU µs/call | Redis cores busy | "
    "workers CPU µs/call | callers CPU µs/call | all CPU µs/call | send scripts/call | "
    "pops/call | errors |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


class Topology:
    """One Redis or a cluster: its layer CONFIG, its server pids, six spread channels."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.single: RedisServer | None = None
        self.cluster: RedisCluster | None = None

    def __enter__(self) -> Topology:
        if self.kind == "single":
            self.single = RedisServer().start()
        else:
            self.cluster = RedisCluster(masters=3, replicas=0).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.single is not None:
            self.single.stop()
        if self.cluster is not None:
            self.cluster.stop()

    @property
    def label(self) -> str:
        return "1 Redis" if self.kind == "single" else "cluster, 3 masters"

    def config(self) -> dict[str, Any]:
        base: dict[str, Any] = {"capacity": 5000}
        if self.single is not None:
            return {**base, "hosts": [self.single.url]}
        assert self.cluster is not None
        return {**base, "hosts": self.cluster.urls, "cluster": True}

    def servers(self) -> list[RedisServer]:
        if self.single is not None:
            return [self.single]
        assert self.cluster is not None
        return self.cluster.nodes

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.servers() if s.proc is not None]

    def commands(self) -> tuple[int, int]:
        """(script calls, pop calls) Redis ran so far, over every server."""
        scripts = pops = 0
        for server in self.servers():
            with redis.Redis(port=server.port, protocol=2) as client:
                stats = client.info("commandstats")
            for name, row in stats.items():
                if name in ("cmdstat_evalsha", "cmdstat_eval"):
                    scripts += int(row["calls"])
                elif name in ("cmdstat_bzmpop", "cmdstat_zmpop"):
                    pops += int(row["calls"])
        return scripts, pops

    def channels(self) -> list[str]:
        """Six request channels, two per cluster master (any six on one Redis)."""
        if self.cluster is None:
            return [f"bench{i}.request" for i in range(6)]
        per_master: dict[int, list[str]] = {}
        for i in range(200):
            name = f"bench{i}.request"
            chosen = per_master.setdefault(self.cluster.master_of("asgi" + name), [])
            if len(chosen) < 2:
                chosen.append(name)
            if sum(map(len, per_master.values())) == 6:
                break
        return [name for names in per_master.values() for name in names]


def start_workers(
    topology: Topology, channels: list[str], count: int, telemetry: bool
) -> list[ManagedProcess]:
    env = {
        "SCALE_BENCH_CONFIG": json.dumps(topology.config()),
        "SCALE_BENCH_CHANNELS": ",".join(channels),
        "SCALE_BENCH_TELEMETRY": "1" if telemetry else "0",
    }
    args = [sys.executable, "-m", "django", "runworker", *channels, "--settings", SETTINGS]
    procs = [ManagedProcess(args, env=env, cwd=ROOT, name=f"worker{i}") for i in range(count)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.wait_for("worker serving", timeout=60)
    return procs


def measure(
    topology: Topology, workers: int, args: argparse.Namespace, channels: list[str]
) -> Cell:
    """Start the workers and callers, measure one window, stop them."""
    cell = Cell(topology.label, workers, seconds=args.duration)
    procs = start_workers(topology, channels, workers, args.telemetry)
    callers: list[subprocess.Popen[str]] = []
    try:
        caller_args = [
            sys.executable, "-m", "benchmarks.scale", "--caller", json.dumps(topology.config()),
            ",".join(channels), str(args.inflight), str(args.duration), str(int(args.telemetry)),
        ]  # fmt: skip
        for _ in range(args.callers):
            callers.append(
                subprocess.Popen(
                    caller_args,
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
            )
        for caller in callers:
            assert caller.stdout is not None
            line = caller.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a caller did not start: {line!r}")
        redis_pids = topology.pids()
        worker_pids = [p.proc.pid for p in procs if p.proc is not None]
        caller_pids = [c.pid for c in callers]
        before = [sum(map(cpu_seconds, pids)) for pids in (redis_pids, worker_pids, caller_pids)]
        commands = topology.commands()
        for caller in callers:
            assert caller.stdin is not None
            caller.stdin.write("go\n")
            caller.stdin.flush()
        results = []
        for caller in callers:
            assert caller.stdout is not None
            results.append(json.loads(caller.stdout.readline()))
        after = [sum(map(cpu_seconds, pids)) for pids in (redis_pids, worker_pids, caller_pids)]
        scripts, pops = topology.commands()
        cell.scripts, cell.pops = scripts - commands[0], pops - commands[1]
        spent = [a - b for a, b in zip(after, before, strict=True)]
        cell.redis_cpu, cell.worker_cpu, cell.caller_cpu = spent
        cell.calls = sum(r["calls"] for r in results)
        cell.errors = sum(r["errors"] for r in results)
        cell.first_error = next((r["first_error"] for r in results if r["first_error"]), "")
    finally:
        for caller in callers:
            if caller.poll() is None:
                caller.kill()
            caller.wait(10)
        for proc in procs:
            proc.stop()
    return cell


# ---- the caller processes ----------------------------------------------------------


def caller_main(
    config: dict[str, Any], channels: list[str], inflight: int, duration: float, telemetry: bool
) -> None:
    """Connect, warm up, print "ready", wait for "go", then call for ``duration`` seconds."""
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["servicebus", "channels"],
        CHANNEL_LAYERS={
            "default": {"BACKEND": "servicebus.layers.RedisChannelLayer", "CONFIG": config}
        },
        SERVICEBUS={"SERVICE_NAME": f"scale-caller-{os.getpid()}", "TELEMETRY": telemetry},
        USE_TZ=True,
    )
    django.setup()
    import servicebus

    async def run() -> dict[str, Any]:
        # Warm-up: connections, the slot map, every worker's first batches.
        await asyncio.gather(
            *(servicebus.acall(channels[i % len(channels)], "echo", BODY) for i in range(300))
        )
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        counts = {"calls": 0, "errors": 0, "first_error": ""}
        stop_at = time.perf_counter() + duration

        async def loop(offset: int) -> None:
            i = offset
            while time.perf_counter() < stop_at:
                i += 1
                try:
                    await servicebus.acall(channels[i % len(channels)], "echo", BODY, timeout=10)
                except Exception as exc:
                    counts["errors"] += 1
                    counts["first_error"] = counts["first_error"] or f"{exc!r}"[:120]
                else:
                    counts["calls"] += 1

        await asyncio.gather(*(loop(n) for n in range(inflight)))
        return counts

    print(json.dumps(asyncio.run(run())), flush=True)


# ---- main --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 s windows")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per cell")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    parser.add_argument("--topologies", default="single,cluster", help="single and/or cluster")
    parser.add_argument("--callers", type=int, default=2, help="caller processes")
    parser.add_argument("--inflight", type=int, default=64, help="calls in flight per caller")
    parser.add_argument(
        "--no-telemetry",
        dest="telemetry",
        action="store_false",
        help="workers and callers without the default telemetry hooks",
    )
    parser.add_argument("--caller", nargs=5, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.caller:
        config, channels, inflight, duration, telemetry = args.caller
        on = telemetry == "1"
        caller_main(json.loads(config), channels.split(","), int(inflight), float(duration), on)
        return
    if args.quick:
        args.duration = 1.0
    args.duration = min(max(args.duration, 0.5), 30.0)  # bounded run time
    counts = [int(n) for n in args.workers.split(",")]
    cells: list[Cell] = []
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    for kind in args.topologies.split(","):
        with Topology(kind) as topology:
            channels = topology.channels()
            for workers in counts:
                cell = measure(topology, workers, args, channels)
                cells.append(cell)
                print(HEADER.splitlines()[0] if len(cells) == 1 else "", end="")
                print(("\n" + HEADER.splitlines()[1] + "\n") if len(cells) == 1 else "", end="")
                print(cell.row(), flush=True)
    print(
        f"\n{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{args.callers} caller processes x {args.inflight} in flight, "
        f"{args.duration:g} s per cell, telemetry {'on' if args.telemetry else 'off'}, "
        f"{time.monotonic() - started:.0f} s in all; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    for cell in cells:
        if cell.first_error:
            print(f"{cell.topology}, {cell.workers} workers: first error {cell.first_error}")


if __name__ == "__main__":
    main()
