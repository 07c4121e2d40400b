"""CPU per RPC call of the caller, the worker and redis-server, from /proc (utime + stime).

    python -m benchmarks.cpu                        # 20,000 calls at 64 in flight, 3 rounds
    python -m benchmarks.cpu --modes off,all        # telemetry off and the defaults, interleaved
    python -m benchmarks.cpu --arrival open --rate 5000
    python -m benchmarks.cpu --nats nats://127.0.0.1:4222   # NATS request/reply beside it

A private redis-server, one ``runworker`` process (async echo handler) and this process as
the caller (on uvloop when installed). Each round makes a fixed number of calls after a
warm-up and reads the three processes' CPU time before and after: per-call CPU is far
steadier than calls/s on a shared machine, and throughput at saturation is its inverse.

Arrival patterns (the first is the best case for coalescing sends):
  closed  ``--inflight`` loops, each starting its next call when its reply arrives: a batch
          of replies wakes many loops in one tick, so their sends share one script call
  open    calls start at Poisson-distributed times at ``--rate`` calls/s (at most
          ``--inflight`` at once), independent of the replies

Telemetry modes are those of benchmarks.telemetry (``off``, ``metrics``, ``record``,
``all`` = the defaults with an SDK tracer provider, ``defaults`` = the defaults without an
SDK, as a project without OpenTelemetry's SDK runs).
Bounded: ``--calls`` per round and ``--limit`` seconds per round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import ManagedProcess  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

SETTINGS = "benchmarks.telemetry_settings"
CHANNEL = "bench.request"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (all its threads) in seconds, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def syscalls(pid: int) -> tuple[int, int]:
    """(read-family, write-family) system calls of a process so far, from /proc/PID/io."""
    try:
        fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    except OSError:  # another user's process, or no /proc/PID/io
        return 0, 0
    return int(fields["syscr"]), int(fields["syscw"])


def loop_runner() -> tuple[Any, str]:
    """uvloop.run when installed (as servicebus's own processes use), else asyncio.run."""
    try:
        import uvloop

        return uvloop.run, "uvloop"
    except ImportError:
        return asyncio.run, "asyncio"


async def closed_loop(count: int, inflight: int, body: bytes, limit: float) -> list[float]:
    """``count`` calls from ``inflight`` loops; the latency of each (seconds)."""
    import servicebus

    latencies: list[float] = []
    stop_at = time.monotonic() + limit
    left = count

    async def one_loop() -> None:
        nonlocal left
        while left > 0 and time.monotonic() < stop_at:
            left -= 1
            t0 = time.perf_counter()
            await servicebus.acall(CHANNEL, "echo", body, timeout=30)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(one_loop() for _ in range(inflight)))
    return latencies


async def open_loop(
    count: int, inflight: int, body: bytes, limit: float, rate: float
) -> list[float]:
    """``count`` calls started at Poisson times, ``rate`` a second, at most ``inflight`` at once.

    An arrival that finds ``inflight`` calls running waits for one to end (counted in its
    latency), so the offered load is bounded like a server with a connection cap.
    """
    import servicebus

    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    slots = asyncio.Semaphore(inflight)
    tasks: set[asyncio.Task[None]] = set()
    rng = random.Random(1)

    async def one(t0: float) -> None:
        async with slots:
            await servicebus.acall(CHANNEL, "echo", body, timeout=30)
        latencies.append(time.perf_counter() - t0)

    start = loop.time()
    stop_at = start + limit
    due = start
    for _ in range(count):
        due += rng.expovariate(rate)
        if due > stop_at:
            break
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(one(time.perf_counter()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=max(1.0, stop_at - loop.time() + 30))
    return latencies


def redis_commands(url: str, reset: bool = False) -> dict[str, tuple[int, float]]:
    """Redis's own accounting: command -> (calls, µs spent), from INFO commandstats."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        if reset:
            client.config_resetstat()
            return {}
        stats = client.info("commandstats")
    finally:
        client.close()
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), float(v["usec"]))
        for name, v in stats.items()
    }


async def measure(args: argparse.Namespace, pids: list[int]) -> dict[str, Any]:
    """Warm up, then make ``args.calls`` calls; CPU per call of each pid and the latencies."""
    body = b"x" * args.size
    await closed_loop(args.warmup, min(args.inflight, 64), body, args.limit)
    redis_commands(os.environ["BENCH_REDIS_URL"], reset=True)
    layer = _layer()
    sends_before = layer.stats["script_calls"] if layer is not None else 0
    before = [cpu_seconds(p) for p in pids]
    sys_before = [cpu_split(p)[1] for p in pids]
    calls_before = [syscalls(p) for p in pids]
    wall = time.perf_counter()
    if args.arrival == "closed":
        latencies = await closed_loop(args.calls, args.inflight, body, args.limit)
    else:
        latencies = await open_loop(args.calls, args.inflight, body, args.limit, args.rate)
    wall = time.perf_counter() - wall
    used = [cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)]
    kernel = [cpu_split(p)[1] - b for p, b in zip(pids, sys_before, strict=True)]
    done = max(1, len(latencies))
    io = [
        ((r - r0) / done, (w - w0) / done)
        for (r, w), (r0, w0) in zip((syscalls(p) for p in pids), calls_before, strict=True)
    ]
    scripts = (layer.stats["script_calls"] - sends_before) if layer is not None else 0
    commands = redis_commands(os.environ["BENCH_REDIS_URL"])
    latencies.sort()
    return {
        "calls": len(latencies),
        "rate": len(latencies) / wall,
        "cpu_us": [u / done * 1e6 for u in used],
        # Of which in the kernel (system calls, the loopback TCP stack, wake-ups).
        "sys_us": [k / done * 1e6 for k in kernel],
        # Read and write system calls per call of caller and worker (socket I/O).
        "io": io[:2],
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
        # Requests sent per send-script call by the caller (coalescing; 0 if unknown).
        "per_script": len(latencies) / scripts if scripts else 0.0,
        # Inside Redis, per RPC call: command -> (commands per call, µs per call).
        "commands": {
            name: (calls / done, usec / done)
            for name, (calls, usec) in sorted(commands.items(), key=lambda kv: -kv[1][1])
            if usec / done >= 0.05
        },
    }


def _layer() -> Any:
    from servicebus.layers import RedisChannelLayer
    from servicebus.transport import get_transport

    layer = get_transport().layer
    return layer if isinstance(layer, RedisChannelLayer) else None


def configure_caller(mode: str) -> None:
    """Telemetry of this process as in ``mode`` (the worker gets it from its settings)."""
    from django.conf import settings

    from benchmarks.telemetry_settings import mode_settings
    from servicebus.conf import get_settings
    from servicebus.telemetry import install_defaults, uninstall_defaults
    from servicebus.telemetry.records import recorder

    uninstall_defaults()
    settings.SERVICEBUS = mode_settings(mode)
    get_settings.cache_clear()
    install_defaults()
    recorder.configure(active=False)  # only a worker runtime flushes records
    if mode == "defaults":
        # A project without an OpenTelemetry SDK: the API's no-op tracer, even though this
        # process installed an SDK provider for the other modes (it can be set only once).
        from opentelemetry import trace

        from servicebus import hooks
        from servicebus.telemetry.tracing import TracingHook

        for hook in hooks.installed():
            if isinstance(hook, TracingHook):
                hook.provider = trace.NoOpTracerProvider()
                hook.tracer = hook.provider.get_tracer("servicebus")


def measure_nats(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The same calls over NATS request/reply (nats-py responder, the machine's server).

    Closed loop only; the nats-server is the machine's (shared: its CPU includes anything
    else it serves meanwhile).
    """
    import subprocess

    from benchmarks.peers import NATS_SUBJECT

    try:
        server = int(subprocess.run(["pgrep", "-x", "nats-server"], capture_output=True,
                                    text=True).stdout.split()[0])  # fmt: skip
    except (IndexError, ValueError, OSError):
        print("NATS skipped: no nats-server process", flush=True)
        return []
    responder = ManagedProcess(
        [sys.executable, "-m", "benchmarks.peers", "nats", args.nats], cwd=ROOT, name="nats"
    )
    responder.start(ready="ready", timeout=60)
    runner, _ = loop_runner()
    rows = []
    try:
        assert responder.proc is not None
        pids = [os.getpid(), responder.proc.pid, server]
        for round_ in range(args.rounds):
            rows.append(runner(_nats_round(args, pids, NATS_SUBJECT)))
            caller, work, srv = rows[-1]["cpu_us"]
            print(
                f"round {round_ + 1} NATS     {rows[-1]['calls']:>7,} calls "
                f"{rows[-1]['rate']:>8,.0f}/s  CPU µs/call: caller {caller:5.1f}  responder "
                f"{work:5.1f}  nats-server {srv:5.1f}  total {caller + work + srv:5.1f}",
                flush=True,
            )
    finally:
        responder.stop()
    return rows


async def _nats_round(args: argparse.Namespace, pids: list[int], subject: str) -> dict[str, Any]:
    import nats

    nc = await nats.connect(args.nats, max_reconnect_attempts=1)
    body = b"x" * args.size
    left = args.warmup

    async def loop() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await nc.request(subject, body, timeout=30)

    try:
        await asyncio.gather(*(loop() for _ in range(min(args.inflight, 64))))
        before = [cpu_seconds(p) for p in pids]
        left = args.calls
        wall = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(args.inflight)))
        wall = time.perf_counter() - wall
        used = [cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)]
    finally:
        await nc.close()
    return {
        "calls": args.calls,
        "rate": args.calls / wall,
        "cpu_us": [u / args.calls * 1e6 for u in used],
    }


def describe(args: argparse.Namespace, loop_name: str) -> str:
    """The benchmark's own settings, printed with its figures."""
    from django.conf import settings

    from servicebus.conf import get_settings

    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    arrival = (
        f"closed loop, {args.inflight} in flight"
        if args.arrival == "closed"
        else f"open loop, Poisson arrivals at {args.rate:g}/s, at most {args.inflight} in flight"
    )
    return (
        f"{args.calls:,} calls of {args.size} B per round after {args.warmup:,} warm-up calls; "
        f"{arrival}; caller on {loop_name}; worker: runworker, concurrency "
        f"{get_settings().WORKER_CONCURRENCY}, batch {get_settings().WORKER_BATCH}; layer capacity "
        f"{config['capacity']}, max_batch {config['max_batch']}, drain_batch "
        f"{config['drain_batch']}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000, help="measured calls per round")
    parser.add_argument("--warmup", type=int, default=2_000, help="calls before measuring")
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--size", type=int, default=100, help="body bytes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="off", help="telemetry modes, interleaved per round")
    parser.add_argument("--arrival", choices=("closed", "open"), default="closed")
    parser.add_argument("--rate", type=float, default=5000.0, help="open loop: calls/s")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds per round at most")
    parser.add_argument(
        "--commands", action="store_true", help="also print Redis's time per command per call"
    )
    parser.add_argument(
        "--nats",
        default="",
        metavar="URL",
        help="also measure NATS request/reply (e.g. nats://127.0.0.1:4222), closed loop",
    )
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    runner, loop_name = loop_runner()
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    with RedisServer() as redis:
        assert redis.proc is not None
        os.environ.update(
            BENCH_REDIS_URL=redis.url, DJANGO_SETTINGS_MODULE=SETTINGS, BENCH_TELEMETRY="off"
        )
        import django

        django.setup()
        print(describe(args, loop_name), flush=True)
        if {"metrics", "tracing", "all"} & set(modes):
            from benchmarks.telemetry_settings import install_tracer_provider

            install_tracer_provider()
        for round_ in range(args.rounds):
            for mode in modes:
                env = {
                    "BENCH_REDIS_URL": redis.url,
                    "DJANGO_SETTINGS_MODULE": SETTINGS,
                    "BENCH_TELEMETRY": mode,
                    "BENCH_SAMPLE_RATIO": os.environ.get("BENCH_SAMPLE_RATIO", ""),
                }
                worker = ManagedProcess(
                    [sys.executable, "-m", "django", "runworker", CHANNEL],
                    env=env,
                    cwd=ROOT,
                    name=f"worker-{mode}",
                )
                worker.start(ready="worker serving", timeout=60)
                try:
                    configure_caller(mode)
                    assert worker.proc is not None
                    pids = [os.getpid(), worker.proc.pid, redis.proc.pid]
                    result = runner(measure(args, pids))
                finally:
                    worker.stop()
                results[mode].append(result)
                caller, work, server = result["cpu_us"]
                print(
                    f"round {round_ + 1} {mode:<8} {result['calls']:>7,} calls "
                    f"{result['rate']:>8,.0f}/s  CPU µs/call: caller {caller:5.1f}  "
                    f"worker {work:5.1f}  redis {server:5.1f}  total "
                    f"{caller + work + server:5.1f}  p50 {result['p50_ms']:.2f} ms  "
                    f"p99 {result['p99_ms']:.2f} ms  sends/script {result['per_script']:.1f}  "
                    "reads/writes per call: caller {:.2f}/{:.2f} worker {:.2f}/{:.2f}".format(
                        *result["io"][0], *result["io"][1]
                    ),
                    flush=True,
                )
                print(
                    "  of which in the kernel: caller {:.1f}  worker {:.1f}  redis {:.1f}".format(
                        *result["sys_us"]
                    ),
                    flush=True,
                )
                if args.commands:
                    print(
                        "  inside redis per call: "
                        + ", ".join(
                            f"{name} {n:.2f}x {us:.2f} µs"
                            for name, (n, us) in result["commands"].items()
                        ),
                        flush=True,
                    )
    nats_rows = measure_nats(args) if args.nats else []
    print(f"\nmedians of {args.rounds} round(s):")
    if nats_rows:
        med = [statistics.median(r["cpu_us"][i] for r in nats_rows) for i in range(3)]
        print(
            f"  {'NATS':<8} caller {med[0]:5.1f}  responder {med[1]:5.1f}  nats-server "
            f"{med[2]:5.1f}  total {sum(med):5.1f} µs/call;  "
            f"{statistics.median(r['rate'] for r in nats_rows):,.0f} calls/s"
        )
    for mode in modes:
        rows = results[mode]
        med = [statistics.median(r["cpu_us"][i] for r in rows) for i in range(3)]
        rate = statistics.median(r["rate"] for r in rows)
        print(
            f"  {mode:<8} caller {med[0]:5.1f}  worker {med[1]:5.1f}  redis {med[2]:5.1f}  "
            f"total {sum(med):5.1f} µs/call;  {rate:,.0f} calls/s"
        )


if __name__ == "__main__":
    main()
