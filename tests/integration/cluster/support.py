"""Helpers of the scaling tests: runworker processes, the caller's layer, failovers.

Loads of ``record`` calls and the record files: tests.support.load.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from channels.layers import channel_layers

from tests.support.load import Load, load_until_recovered, recorded, run_load
from tests.support.processes import ManagedProcess, runworker

SETTINGS = "tests.integration.cluster.project.settings"

# What a caller may see while Redis fails over: typed errors, never anything else.
ALLOWED = {"ok", "BusUnavailable", "CallTimeout", "Backpressure"}
# The failover tests' load: two request channels, each call with this timeout (s).
FAILOVER_CHANNELS = ["orders.request", "stock.request"]
FAILOVER_TIMEOUT = 1.0


def start_worker(
    config: dict[str, Any],
    record_dir: Path,
    channels: list[str],
    *,
    name: str = "w0",
    concurrency: int = 64,
) -> ManagedProcess:
    """``runworker`` for ``channels`` on the layer CONFIG ``config``; waits until it serves."""
    env = {
        "SCALE_LAYER_CONFIG": json.dumps(config),
        "SCALE_RECORD_DIR": str(record_dir),
        "SCALE_WORKER_NAME": name,
        "SCALE_CHANNELS": ",".join(channels),
    }
    return runworker(
        channels, concurrency=concurrency, settings=SETTINGS, extra_env=env, name=name, timeout=60
    )


def use_layer(settings: Any, config: dict[str, Any]) -> None:
    """Point this (caller) process's default channel layer at ``config``."""
    channel_layers.backends.clear()
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "servicebus.layers.RedisChannelLayer", "CONFIG": config}
    }
    settings.SERVICEBUS = {"SERVICE_NAME": "scale-caller", "RECEIVE_POLL": 0.2}


@dataclass
class Failover:
    """What a load saw across one failover (``failover_under_load``)."""

    load: Load
    counts: Counter[str]  # executions per key, over both workers
    before: int  # calls answered before the failure
    failed_at: float
    promoted_at: float
    recovered_at: float | None
    alive: list[bool]  # the workers, after it

    @property
    def recovery(self) -> float | None:
        """Seconds from the promotion to the first answer to a call started after it."""
        return None if self.recovered_at is None else self.recovered_at - self.promoted_at


async def failover_under_load(
    settings: Any,
    config: dict[str, Any],
    record_dir: Path,
    *,
    prefix: str,
    fail: Callable[[], Awaitable[None]],
    bound: float,
) -> Failover:
    """Two runworkers on FAILOVER_CHANNELS and 16 callers in this process; after 1.5 s of
    load ``fail()`` fails the master over and returns once a new one is promoted; the load
    goes on until calls are answered again (``load_until_recovered``, ``bound``)."""
    use_layer(settings, config)
    channels = FAILOVER_CHANNELS
    workers = [start_worker(config, record_dir, channels, name=f"w{i}") for i in range(2)]
    load = Load()
    stop = asyncio.Event()
    try:
        running = asyncio.create_task(
            run_load(
                load, channels, loops=16, until=stop, timeout=FAILOVER_TIMEOUT, prefix=prefix,
                max_calls=200_000,
            )
        )  # fmt: skip
        await asyncio.sleep(1.5)
        before = len(load.ok_keys())
        failed_at = time.monotonic()
        await fail()
        promoted_at = time.monotonic()
        recovered_at = await load_until_recovered(load, running, stop, promoted_at, bound=bound)
        alive = [w.alive() for w in workers]
    finally:
        stop.set()
        for worker in workers:
            worker.stop()
    counts = recorded(record_dir)
    return Failover(load, counts, before, failed_at, promoted_at, recovered_at, alive)


def check_failover(result: Failover, bound: float) -> None:
    """What callers must see across a failover: typed errors only, no hang, answers again
    within ``bound`` s of the promotion and for good, no request run twice."""
    load, counts = result.load, result.counts
    assert result.before > 100  # the load was real
    assert set(load.outcome.values()) <= ALLOWED, load.errors()  # typed errors only
    assert max(load.took.values()) < FAILOVER_TIMEOUT + 2  # never a hang
    assert result.recovery is not None and result.recovery < bound
    assert all(load.outcome[k] == "ok" for k in load.last(100))  # recovered for good
    assert all(c == 1 for c in counts.values()), "a request ran twice"
    assert all(counts[k] == 1 for k in load.ok_keys())  # every answer from one execution
    assert load.misrouted == 0
    assert all(result.alive)
