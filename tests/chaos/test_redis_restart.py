"""Redis SIGKILLed and restarted under load: typed errors, no hang, recovery, nothing twice."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos.support import CHANNEL, start_worker
from tests.support.load import Load, load_until_recovered, recorded, run_load
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis

TIMEOUT = 1.0  # per call
DOWN = 2.0  # seconds Redis stays dead
RECOVERY_BOUND = 10.0  # seconds from restart to the first answered call
ALLOWED = {"ok", "BusUnavailable", "CallTimeout"}
BUDGET = 500_000  # calls at most: the load must last until the test stops it


async def test_redis_killed_and_restarted_under_load(caller, record_dir):
    with RedisServer() as server:
        caller(server.url)
        worker = start_worker(server.url, record_dir)
        load = Load()
        stop = asyncio.Event()
        try:
            running = asyncio.create_task(
                run_load(
                    load,
                    [CHANNEL],
                    loops=16,
                    until=stop,
                    timeout=TIMEOUT,
                    prefix="k",
                    max_calls=BUDGET,
                )
            )
            await asyncio.sleep(1.5)
            server.kill()
            killed_at = time.monotonic()
            await asyncio.sleep(DOWN)
            server.start()  # same port, empty (no persistence)
            restarted_at = time.monotonic()
            # Load goes on until calls succeed again, then 2 s more (bounded).
            recovered_at = await load_until_recovered(
                load, running, stop, restarted_at, bound=RECOVERY_BOUND, stop_within=TIMEOUT + 10
            )
            alive = worker.alive()
        finally:
            stop.set()
            worker.stop()
    counts = recorded(record_dir)
    kinds = load.errors()
    slowest = max(load.took.values())
    during = [k for k in load.outcome if killed_at <= load.started[k] < restarted_at]
    tail = load.last(100)
    recovery = None if recovered_at is None else recovered_at - restarted_at
    print(
        f"\nCHAOS redis restart: {len(load.outcome)} calls, Redis dead {DOWN:.0f}s; errors "
        f"{dict(kinds)}; {len(during)} calls while down; slowest call {slowest:.2f}s "
        f"(timeout {TIMEOUT}s); first answer {recovery if recovery is None else round(recovery, 2)}"
        f"s after restart; last 100 calls ok: {sum(load.outcome[k] == 'ok' for k in tail)}; "
        f"executed twice: {sum(1 for c in counts.values() if c > 1)}"
    )
    assert len(load.outcome) < BUDGET  # the load lasted through the outage and recovery
    assert set(load.outcome.values()) <= ALLOWED, kinds  # typed errors only
    assert slowest < TIMEOUT + 3  # never a hang
    assert recovery is not None and recovery < RECOVERY_BOUND
    assert all(load.outcome[k] == "ok" for k in tail)  # recovered for good
    assert all(c == 1 for c in counts.values())  # nothing ran twice
    assert all(counts[k] == 1 for k in load.ok_keys())  # every answer from one execution
    assert alive
