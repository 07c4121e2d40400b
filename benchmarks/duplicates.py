"""Exactly-once check under load: 3 workers share one channel, N calls, count executions.

    python -m benchmarks.duplicates              # 100,000 calls, 64 in flight
    python -m benchmarks.duplicates --calls 20000

Every call carries a unique key; the handler counts executions per key in Redis. A call
executed twice, or a call lost while the channel is under capacity, is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import ManagedProcess  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402


async def drive(calls: int, inflight: int) -> tuple[list[str], Counter[str], int]:
    """Make ``calls`` record calls; return their keys, errors by kind and pids seen."""
    import servicebus

    keys = [uuid.uuid4().hex for _ in range(calls)]
    errors: Counter[str] = Counter()
    pids: set[int] = set()
    it = iter(keys)

    async def loop() -> None:
        for key in it:
            try:
                pids.add(await servicebus.acall("bench.request", "record", key, timeout=30))
            except servicebus.ServiceBusError as exc:
                errors[type(exc).__name__] += 1

    await asyncio.gather(*(loop() for _ in range(inflight)))
    return keys, errors, len(pids)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args(argv)
    with RedisServer() as redis_server:
        os.environ["BENCH_REDIS_URL"] = redis_server.url
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.project.settings"
        import django

        django.setup()
        env = {"BENCH_REDIS_URL": redis_server.url}
        workers = [
            ManagedProcess(
                [sys.executable, "-m", "django", "runworker", "bench.request"],
                env={**env, "DJANGO_SETTINGS_MODULE": "benchmarks.project.settings"},
                name=f"worker-{i}",
            ).start(ready="worker serving", timeout=60)
            for i in range(args.workers)
        ]
        try:
            start = time.perf_counter()
            try:
                import uvloop

                runner: Any = uvloop.run
            except ImportError:
                runner = asyncio.run
            keys, errors, pids = runner(drive(args.calls, args.inflight))
            elapsed = time.perf_counter() - start
        finally:
            for worker in workers:
                worker.stop()
        import redis

        counts = {
            k.decode(): int(v)
            for k, v in redis.Redis.from_url(redis_server.url).hgetall("bench:executions").items()
        }
    twice = sum(1 for key in keys if counts.get(key, 0) > 1)
    lost = sum(1 for key in keys if counts.get(key, 0) == 0)
    print(
        f"{args.calls:,} calls, {args.inflight} in flight, {args.workers} workers "
        f"({pids} answered) in {elapsed:.1f}s ({args.calls / elapsed:,.0f} calls/s)"
    )
    print(f"executed twice: {twice}   lost (never executed): {lost}   errors: {dict(errors)}")
    sys.exit(1 if twice or lost or errors else 0)


if __name__ == "__main__":
    main()
