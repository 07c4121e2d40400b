"""A worker SIGKILLed or SIGTERMed under load while another one serves the same channel."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.chaos.support import CHANNEL, start_worker
from tests.support.load import Load, recorded, run_load

pytestmark = pytest.mark.redis

LOOPS = 16
TIMEOUT = 3.0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_worker_signal_under_load(caller, redis_flushed, record_dir, sig):
    victim = start_worker(redis_flushed, record_dir, name="victim", concurrency=16)
    survivor = start_worker(redis_flushed, record_dir, name="survivor", concurrency=16)
    load = Load()
    stop = asyncio.Event()
    try:
        # 50 ms per call: requests are in the middle of their handler when the signal lands.
        running = asyncio.create_task(
            run_load(
                load,
                [CHANNEL],
                loops=LOOPS,
                until=stop,
                timeout=TIMEOUT,
                prefix="k",
                max_calls=100_000,
                delay=0.05,
            )
        )
        await asyncio.sleep(1.5)
        victim.signal(sig)
        code = await asyncio.to_thread(victim.wait, 20)
        gone_at = time.monotonic()
        # Calls the victim held time out; the loops then go on with the survivor.
        await asyncio.sleep(TIMEOUT + 1.5)
        stop.set()
        await asyncio.wait_for(running, TIMEOUT + 10)
        survivor_alive = survivor.alive()
    finally:
        stop.set()
        victim.stop()
        survivor.stop()
    counts = recorded(record_dir)
    errors = load.errors()
    after = [k for k in load.outcome if load.started[k] > gone_at]
    ran_no_reply = sum(1 for k, v in load.outcome.items() if v != "ok" and counts[k] == 1)
    print(
        f"\nCHAOS worker {sig.name}: {len(load.outcome)} calls; victim exit {code}; errors "
        f"{dict(errors)} ({ran_no_reply} of them ran, reply lost); calls after it was gone "
        f"{sum(load.outcome[k] == 'ok' for k in after)}/{len(after)} answered; "
        f"executed twice: {sum(1 for c in counts.values() if c > 1)}"
    )
    assert all(c == 1 for c in counts.values())  # at-most-once: nothing ran twice
    assert all(counts[k] == 1 for k in load.ok_keys()) and load.misrouted == 0
    assert after and all(load.outcome[k] == "ok" for k in after)
    assert survivor_alive
    if sig == signal.SIGTERM:
        # Drained: everything the victim had taken was answered, and it exited cleanly.
        assert code == 0 and errors == {}
        assert "draining" in victim.output
    else:
        # Lost calls are those the victim held: CallTimeout, at most what was in flight.
        assert code == -signal.SIGKILL
        assert set(errors) <= {"CallTimeout"} and sum(errors.values()) <= LOOPS
