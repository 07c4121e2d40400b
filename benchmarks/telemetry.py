"""What telemetry costs: acall throughput at 64 in flight with telemetry off and on.

    python -m benchmarks.telemetry                 # 10 interleaved rounds, 1.5 s cells
    python -m benchmarks.telemetry --rounds 1 --duration 1   # a quick look

One runworker process per mode (each on its own request channel, all started first) and
this process as the caller, switching its own telemetry with each cell. A round runs every
mode once, back to back: on a shared machine whose speed drifts over seconds, the modes a
target compares then see the same machine, and each target is a median of per-round ratios.

Modes (the caller and the mode's worker alike):
  off      SERVICEBUS["TELEMETRY"] = False: no hooks at all
  hooks    the default hooks (stats, access log) without records, metrics or tracing:
           against "record", what recording alone costs
  metrics  Prometheus hook + tracing hook with an OpenTelemetry SDK tracer provider installed
           (spans go to a batch processor whose exporter drops them), no call records
  record   call records on (every call, batched XADD), no metrics, no tracing
  prom     hooks + the Prometheus collector only (it reads the stats at scrape time)
  tracing  hooks + tracing with the SDK provider only
  all      the defaults: stats, access log (INFO off), records, metrics, tracing + provider
  defaults the defaults without an SDK tracer provider (OpenTelemetry API only; worker side)
The targets, each a ratio of two modes that differ only in what the target is about:
  issue 9  record / hooks    call recording on against off          >= 0.85
  issue 8  metrics / hooks   metrics + a tracer provider against both off   >= 0.85
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.cpu import loop_runner  # noqa: E402
from benchmarks.rpc import Cell, run_async_cell  # noqa: E402
from tests.support.processes import ManagedProcess  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

# Each target's two modes run back to back in every round, so the machine's drift between
# cells (seconds apart) falls on both alike: record | hooks | metrics.
MODES = ("off", "record", "hooks", "metrics", "all")
SETTINGS = "benchmarks.telemetry_settings"


def configure_caller(mode: str) -> None:
    """Apply ``mode`` to this process: settings, hooks, tracer provider."""
    from django.conf import settings

    from benchmarks.telemetry_settings import mode_settings
    from servicebus.conf import get_settings
    from servicebus.telemetry import install_defaults, uninstall_defaults
    from servicebus.telemetry.records import recorder

    uninstall_defaults()
    settings.SERVICEBUS = mode_settings(mode)
    get_settings.cache_clear()
    install_defaults()
    # The caller flushes no records (only a worker runtime does): recording is worker-side.
    recorder.configure(active=False)


def channel_of(mode: str) -> str:
    """The request channel of ``mode``'s worker (one worker per mode, all alive at once)."""
    return f"bench.{mode}.request"


async def measure(duration: float, warmup: float, inflight: int, channel: str) -> Cell:
    """acall echo (100 B) on ``channel`` with ``inflight`` calls in flight."""
    import servicebus

    body = b"x" * 100

    async def call() -> Any:
        return await servicebus.acall(channel, "echo", body, timeout=30)

    cell = Cell("acall", inflight, 100)
    await run_async_cell(call, cell, duration, warmup)
    return cell


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=float, default=1.5)
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--sample-ratio", type=float, default=None, help="tracer sampling ratio (default: all)"
    )
    args = parser.parse_args(argv)
    if args.sample_ratio is not None:
        os.environ["BENCH_SAMPLE_RATIO"] = str(args.sample_ratio)
    modes = args.modes.split(",")
    # The caller on uvloop when installed, as the workers (runworker) and benchmarks.rpc.
    run, loop_name = loop_runner()
    print(
        f"caller on {loop_name}; one runworker per mode (uvloop when installed), "
        f"{args.rounds} rounds of {args.duration:g} s cells",
        flush=True,
    )
    rates: dict[str, list[float]] = {m: [] for m in modes}
    # CPU per call of caller + worker + redis-server: steadier than calls/s on a shared
    # machine (throughput at saturation goes with its inverse).
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    with RedisServer() as redis:
        os.environ["BENCH_REDIS_URL"] = redis.url
        os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
        os.environ["BENCH_TELEMETRY"] = "all"
        import django

        django.setup()
        from benchmarks.telemetry_settings import install_tracer_provider

        install_tracer_provider()  # this process; used only while a mode installs tracing
        # One worker per mode, each on its own request channel, all started before the
        # first cell: a round then runs the modes back to back in short cells, seconds
        # apart, so the machine's drift falls on the modes it compares alike.
        workers: list[ManagedProcess] = []
        try:
            for mode in modes:
                env = {"BENCH_REDIS_URL": redis.url, "DJANGO_SETTINGS_MODULE": SETTINGS,
                       "BENCH_TELEMETRY": mode, "BENCH_CHANNEL": channel_of(mode),
                       "BENCH_SAMPLE_RATIO": os.environ.get("BENCH_SAMPLE_RATIO", "")}  # fmt: skip
                worker = ManagedProcess(
                    [sys.executable, "-m", "django", "runworker", channel_of(mode)],
                    env=env, cwd=ROOT, name=f"worker-{mode}",
                )  # fmt: skip
                workers.append(worker)
                worker.start(ready="worker serving", timeout=60)
            # Every process of the run: the idle workers' few wake-ups count too.
            pids = [os.getpid(), redis.proc.pid, *(w.proc.pid for w in workers)]  # type: ignore[union-attr]
            for round_ in range(args.rounds):
                for mode in modes:
                    configure_caller(mode)
                    before = sum(cpu_seconds(p) for p in pids)
                    cell = run(measure(args.duration, args.warmup, args.inflight, channel_of(mode)))
                    used = sum(cpu_seconds(p) for p in pids) - before
                    rates[mode].append(cell.rate)
                    # Warm-up calls are not counted in cell.calls but used CPU: scale them in.
                    calls = cell.calls * (args.duration + args.warmup) / args.duration
                    cpu[mode].append(used / max(calls, 1) * 1e6)
                    print(
                        f"round {round_ + 1} {mode:<8} {cell.rate:>8.0f} calls/s  "
                        f"{cpu[mode][-1]:6.1f} µs CPU/call  "
                        f"p50 {cell.pct(0.5):6.2f} ms  p99 {cell.pct(0.99):6.2f} ms"
                        + (f"  errors={cell.errors} ({cell.first_error})" if cell.errors else ""),
                        flush=True,
                    )
        finally:
            for worker in workers:
                worker.stop()
    base = statistics.median(rates["off"]) if rates.get("off") else None
    sampling = f"sampling {args.sample_ratio}" if args.sample_ratio is not None else "every span"
    print(
        f"\nmedian calls/s at {args.inflight} in flight, {args.rounds} interleaved rounds "
        f"(tracer: {sampling}):"
    )
    for mode in modes:
        median = statistics.median(rates[mode])
        ratio = ""
        if base and "off" in rates:
            # Per-round ratios too: the machine's load drifts between rounds.
            pairs = zip(rates[mode], rates["off"], strict=True)
            paired = statistics.median(r / o for r, o in pairs)
            ratio = f"  {median / base:.2f}x of off (median of per-round ratios {paired:.2f})"
        per_call = statistics.median(cpu[mode])
        cpu_ratio = ""
        if cpu.get("off"):
            cpu_ratio = f" (CPU-bound ratio {statistics.median(cpu['off']) / per_call:.2f})"
        print(f"  {mode:<8} {median:>8.0f}{ratio}; {per_call:.1f} µs CPU/call{cpu_ratio}")
    print_targets(rates, cpu)


TARGETS = (("issue 9", "record", "hooks"), ("issue 8", "metrics", "hooks"))


def print_targets(rates: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    """Each target's ratio (>= 0.85): calls/s and CPU-bound, each a median of per-round ratios
    (the two cells of a round run back to back, so the machine's drift cancels out)."""
    for issue, mode, base in TARGETS:
        if not (rates.get(mode) and rates.get(base)):
            continue
        pairs = zip(rates[mode], rates[base], strict=True)
        paired = statistics.median(r / b for r, b in pairs)
        cpu_pairs = zip(cpu[mode], cpu[base], strict=True)
        cpu_bound = statistics.median(b / m for m, b in cpu_pairs)
        verdict = "met" if min(paired, cpu_bound) >= 0.85 else "not met"
        print(
            f"  {issue}: {mode} / {base} = {paired:.2f} calls/s, {cpu_bound:.2f} CPU-bound "
            f"(target >= 0.85: {verdict})"
        )


if __name__ == "__main__":
    main()
