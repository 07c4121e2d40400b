"""At-most-once check under load: workers share one channel, N calls, count executions.

    python -m benchmarks.duplicates                  # 100,000 calls, 64 in flight, 3 workers
    python -m benchmarks.duplicates --kill           # SIGKILL one worker half-way through
    python -m benchmarks.duplicates --quick [--kill] # 3,000 calls: the bounded CI variant

Every call carries a unique key; the handler counts executions per key in Redis and
answers with that key and its worker's name, so a reply routed to the wrong call is
caught. Checked: nothing executed twice, every reply for its own call, every worker
answered, the request queue empty before the workers stop. Without a fault every call
is answered and executed once. With ``--kill`` the calls the dead worker held are lost:
each gets a CallTimeout (counted, with whether it ran), and every call started after the
kill is answered. Exit status 1 when a check fails; ``--json`` adds a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import ManagedProcess  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

CHANNEL = "bench.request"
SETTINGS = "benchmarks.project.settings"


@dataclass
class Run:
    """What the callers saw: per-call outcome, answering worker, and the kill's moment."""

    keys: list[str]
    outcome: dict[str, str] = field(default_factory=dict)  # key -> "ok" or error class
    started: dict[str, float] = field(default_factory=dict)  # key -> monotonic start
    answered_by: Counter[str] = field(default_factory=Counter)
    misrouted: int = 0
    killed_at: float | None = None
    killed: str = ""
    post_kill_latency: float = 0.0  # slowest call started after the kill


async def drive(
    run: Run, inflight: int, timeout: float, kill: ManagedProcess | None, kill_after: int
) -> None:
    """Make one ``record`` call per key, ``inflight`` at a time; SIGKILL ``kill`` half-way."""
    import servicebus

    it = iter(run.keys)
    done = 0
    half = asyncio.Event()

    async def loop() -> None:
        nonlocal done
        for key in it:
            start = run.started[key] = time.monotonic()
            try:
                reply = await servicebus.acall(CHANNEL, "record", key, timeout=timeout)
            except servicebus.ServiceBusError as exc:
                run.outcome[key] = type(exc).__name__
            else:
                run.outcome[key] = "ok"
                if not isinstance(reply, dict) or reply.get("key") != key:
                    run.misrouted += 1
                else:
                    run.answered_by[str(reply.get("worker"))] += 1
                if run.killed_at is not None and start > run.killed_at:
                    run.post_kill_latency = max(run.post_kill_latency, time.monotonic() - start)
            done += 1
            if done >= kill_after:
                half.set()

    async def killer() -> None:
        assert kill is not None
        await half.wait()
        kill.signal(signal.SIGKILL)
        await asyncio.to_thread(kill.wait, 10)
        run.killed_at, run.killed = time.monotonic(), kill.name

    tasks = [loop() for _ in range(inflight)]
    if kill is not None:
        tasks.append(killer())
    await asyncio.gather(*tasks)


def queue_length(url: str) -> int:
    """Requests still waiting in the channel's sorted set (channels_redis key layout)."""
    import redis
    from django.conf import settings

    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"].get("prefix", "asgi")
    with redis.Redis.from_url(url) as client:
        return int(client.zcard(prefix + CHANNEL))


def wait_queue_empty(url: str, timeout: float) -> int:
    """Poll until no request waits (bounded); return what is left."""
    deadline = time.monotonic() + timeout
    left = queue_length(url)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = queue_length(url)
    return left


def check(run: Run, counts: dict[str, int], names: list[str], left: int, inflight: int) -> dict:
    """The summary and the list of failed checks."""
    outcomes = Counter(run.outcome.values())
    errors = {k: v for k, v in outcomes.items() if k != "ok"}
    ok_keys = [k for k in run.keys if run.outcome.get(k) == "ok"]
    failed_keys = [k for k in run.keys if run.outcome.get(k) != "ok"]
    after_kill = [
        k for k in run.keys if run.killed_at is not None and run.started[k] > run.killed_at
    ]
    summary: dict[str, Any] = {
        "calls": len(run.keys),
        "ok": outcomes["ok"],
        "errors": errors,
        "executed_twice": sum(1 for k in run.keys if counts.get(k, 0) > 1),
        "ok_not_executed_once": sum(1 for k in ok_keys if counts.get(k, 0) != 1),
        "lost_never_executed": sum(1 for k in failed_keys if counts.get(k, 0) == 0),
        "lost_executed_no_reply": sum(1 for k in failed_keys if counts.get(k, 0) == 1),
        "misrouted": run.misrouted,
        "answered_by": dict(sorted(run.answered_by.items())),
        "queue_left_before_stop": left,
        "killed": run.killed,
        "calls_after_kill": len(after_kill),
        "calls_after_kill_ok": sum(1 for k in after_kill if run.outcome[k] == "ok"),
        "post_kill_max_latency_s": round(run.post_kill_latency, 3),
    }
    problems = []
    if summary["executed_twice"]:
        problems.append("a call executed twice")
    if summary["ok_not_executed_once"]:
        problems.append("an answered call was not executed exactly once")
    if run.misrouted:
        problems.append("a reply reached the wrong call")
    if left:
        problems.append("requests still queued when the workers were stopped")
    if set(run.answered_by) != set(names):
        problems.append(f"workers that never answered: {sorted(set(names) - set(run.answered_by))}")
    if not run.killed and (errors or summary["lost_never_executed"]):
        problems.append("calls failed or were lost without a fault")
    if run.killed:
        if set(errors) - {"CallTimeout"}:
            problems.append(f"errors other than CallTimeout: {errors}")
        if len(failed_keys) > inflight:
            problems.append("more calls lost than were in flight at the kill")
        if not after_kill or summary["calls_after_kill_ok"] != len(after_kill):
            problems.append("a call started after the kill failed (or none started)")
    summary["problems"] = problems
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=None, help="default 100,000 (quick 3,000)")
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill", action="store_true", help="SIGKILL one worker half-way")
    parser.add_argument("--quick", action="store_true", help="a bounded run for CI")
    parser.add_argument("--timeout", type=float, default=None, help="per call (kill: 5 s)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary line")
    args = parser.parse_args(argv)
    calls = args.calls or (3_000 if args.quick else 100_000)
    # A call the killed worker held waits out its whole timeout: keep that short.
    timeout = args.timeout or (5.0 if args.kill else 30.0)
    names = [f"worker-{i}" for i in range(args.workers)]
    with RedisServer() as redis_server:
        os.environ["BENCH_REDIS_URL"] = redis_server.url
        os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
        import django

        django.setup()
        workers = [
            ManagedProcess(
                [sys.executable, "-m", "django", "runworker", CHANNEL],
                env={
                    "BENCH_REDIS_URL": redis_server.url,
                    "DJANGO_SETTINGS_MODULE": SETTINGS,
                    "BENCH_WORKER_NAME": name,
                },
                name=name,
            ).start(ready="worker serving", timeout=60)
            for name in names
        ]
        run = Run(keys=[uuid.uuid4().hex for _ in range(calls)])
        codes: dict[str, int | None] = {}
        try:
            start = time.perf_counter()
            try:
                import uvloop

                runner: Any = uvloop.run
            except ImportError:
                runner = asyncio.run
            victim = workers[0] if args.kill else None
            runner(drive(run, args.inflight, timeout, victim, calls // 2))
            elapsed = time.perf_counter() - start
            # Stop nobody while a request waits: it would be run later, or never.
            left = wait_queue_empty(redis_server.url, timeout=10.0)
        finally:
            for worker in workers:
                codes[worker.name] = worker.stop()
        import redis

        with redis.Redis.from_url(redis_server.url) as client:
            raw = client.hgetall("bench:executions")
        counts = {k.decode(): int(v) for k, v in raw.items()}
    summary = check(run, counts, names, left, args.inflight)
    graceful = {n: c for n, c in codes.items() if n != run.killed}
    if any(code != 0 for code in graceful.values()):
        summary["problems"].append(f"a worker did not exit 0 on SIGTERM: {graceful}")
    summary["seconds"] = round(elapsed, 2)
    print(
        f"{calls:,} calls, {args.inflight} in flight, {args.workers} workers in {elapsed:.1f}s "
        f"({calls / elapsed:,.0f} calls/s); answered by {summary['answered_by']}"
    )
    print(
        f"executed twice: {summary['executed_twice']}   misrouted: {summary['misrouted']}   "
        f"lost (never executed): {summary['lost_never_executed']}   "
        f"errors: {summary['errors']}   queued at stop: {left}"
    )
    if run.killed:
        print(
            f"SIGKILLed {run.killed} half-way: {summary['lost_executed_no_reply']} ran without "
            f"a reply; {summary['calls_after_kill_ok']}/{summary['calls_after_kill']} calls "
            f"started after the kill answered (slowest {summary['post_kill_max_latency_s']}s)"
        )
    for problem in summary["problems"]:
        print(f"FAILED: {problem}")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    sys.exit(1 if summary["problems"] else 0)


if __name__ == "__main__":
    main()
