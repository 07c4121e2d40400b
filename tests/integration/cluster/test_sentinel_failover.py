"""Sentinel failover under load: a master + replica + 3 sentinels, two runworker processes
and 16 concurrent callers (1 s timeout each) in this process.

Typed errors only, no call hangs, calls answered again within a stated bound after the
promotion, and no request runs twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.cluster.support import ALLOWED, start_worker, use_layer
from tests.support.load import Load, load_until_recovered, recorded, run_load
from tests.support.redis_sentinel import RedisSentinels

pytestmark = pytest.mark.redis

TIMEOUT = 1.0  # per call
# From the moment the new master serves (sentinels name it, it says "master") to the
# first call answered again: connections to the old master fail, new ones ask the
# sentinels; receives retry with a backoff of up to 1 s, the reply drainer up to 2 s.
RECOVERY_BOUND = 5.0
CHANNELS = ["orders.request", "stock.request"]


@pytest.fixture
def sentinels() -> Iterator[RedisSentinels]:
    with RedisSentinels(count=3, down_after_ms=1000, failover_timeout_ms=3000) as made:
        yield made


def _report(how: str, load: Load, counts: Any, failed_at: float, promoted_at: float,
            recovered_at: float | None) -> float | None:  # fmt: skip
    recovery = None if recovered_at is None else recovered_at - promoted_at
    print(
        f"\nSENTINEL {how}: promoted {promoted_at - failed_at:.2f}s after; "
        f"{len(load.outcome)} calls; errors {dict(load.errors())}; slowest "
        f"{max(load.took.values()):.2f}s; first answer "
        f"{recovery if recovery is None else round(recovery, 2)}s after promotion; "
        f"ran twice {sum(1 for c in counts.values() if c > 1)}"
    )
    return recovery


def _check(load: Load, counts: Any, recovery: float | None, before: int) -> None:
    assert before > 100  # the load was real
    assert set(load.outcome.values()) <= ALLOWED, load.errors()  # typed errors only
    assert max(load.took.values()) < TIMEOUT + 2  # never a hang
    assert recovery is not None and recovery < RECOVERY_BOUND
    assert all(load.outcome[k] == "ok" for k in load.last(100))  # recovered for good
    assert all(c == 1 for c in counts.values()), "a request ran twice"
    assert all(counts[k] == 1 for k in load.ok_keys())
    assert load.misrouted == 0


async def _under_load(settings: Any, sentinels: RedisSentinels, record_dir: Path, how: str) -> None:
    config = {"hosts": [sentinels.host_entry()], "capacity": 1000}
    use_layer(settings, config)
    workers = [start_worker(config, record_dir, CHANNELS, name=f"w{i}") for i in range(2)]
    load = Load()
    stop = asyncio.Event()
    try:
        running = asyncio.create_task(
            run_load(
                load,
                CHANNELS,
                loops=16,
                until=stop,
                timeout=TIMEOUT,
                prefix=how,
                max_calls=200_000,
            )
        )
        await asyncio.sleep(1.5)
        before = len(load.ok_keys())
        old = sentinels.master_port()
        failed_at = time.monotonic()
        if how == "kill":
            sentinels.kill(old)
            await asyncio.to_thread(sentinels.wait_promoted, old)
        else:
            # A live master demoted: SENTINEL FAILOVER promotes the replica; the old
            # master is made its replica at once (Sentinel itself would take ~8 s more),
            # so connections to it see READONLY and UNBLOCKED.
            with redis.Redis(port=sentinels.ports[0], socket_timeout=5) as s:
                s.execute_command("SENTINEL", "FAILOVER", "mymaster")
            new = await asyncio.to_thread(sentinels.wait_promoted, old)
            with redis.Redis(port=old, socket_timeout=5) as r:
                r.execute_command("REPLICAOF", "127.0.0.1", new)
        promoted_at = time.monotonic()
        recovered_at = await load_until_recovered(
            load, running, stop, promoted_at, bound=RECOVERY_BOUND
        )
        alive = [w.alive() for w in workers]
    finally:
        stop.set()
        for worker in workers:
            worker.stop()
    counts = recorded(record_dir)
    recovery = _report(how, load, counts, failed_at, promoted_at, recovered_at)
    _check(load, counts, recovery, before)
    assert all(alive)


async def test_master_killed_under_load(settings, sentinels: RedisSentinels, tmp_path: Path):
    await _under_load(settings, sentinels, tmp_path, "kill")


async def test_master_demoted_under_load(settings, sentinels: RedisSentinels, tmp_path: Path):
    await _under_load(settings, sentinels, tmp_path, "demote")
