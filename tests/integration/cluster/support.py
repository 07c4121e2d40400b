"""Helpers of the scaling tests: runworker processes, call loads, records of what ran."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from channels.layers import channel_layers

import servicebus
from tests.support.processes import ManagedProcess

SETTINGS = "tests.integration.cluster.project.settings"

# What a caller may see while Redis fails over: typed errors, never anything else.
ALLOWED = {"ok", "BusUnavailable", "CallTimeout", "Backpressure"}


def start_worker(
    config: dict[str, Any],
    record_dir: Path,
    channels: list[str],
    *,
    name: str = "w0",
    concurrency: int = 64,
) -> ManagedProcess:
    """``runworker`` for ``channels`` on the layer CONFIG ``config``; waits until it serves."""
    args = [sys.executable, "-m", "django", "runworker", *channels, "--settings", SETTINGS]
    args += ["--concurrency", str(concurrency)]
    env = {
        "SCALE_LAYER_CONFIG": json.dumps(config),
        "SCALE_RECORD_DIR": str(record_dir),
        "SCALE_WORKER_NAME": name,
        "SCALE_CHANNELS": ",".join(channels),
    }
    return ManagedProcess(args, env=env, name=name).start(ready="worker serving", timeout=60)


def use_layer(settings: Any, config: dict[str, Any]) -> None:
    """Point this (caller) process's default channel layer at ``config``."""
    channel_layers.backends.clear()
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "servicebus.layers.RedisChannelLayer", "CONFIG": config}
    }
    settings.SERVICEBUS = {"SERVICE_NAME": "scale-caller", "RECEIVE_POLL": 0.2}


def recorded(record_dir: Path) -> Counter[str]:
    """How many times each key ran, over every worker's record file."""
    counts: Counter[str] = Counter()
    for path in record_dir.glob("*.keys"):
        counts.update(line for line in path.read_text().splitlines() if line)
    return counts


@dataclass
class Load:
    """Outcome, start and duration of every call of a load run, by key."""

    outcome: dict[str, str] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    took: dict[str, float] = field(default_factory=dict)
    worker: dict[str, str] = field(default_factory=dict)
    misrouted: int = 0

    def errors(self) -> Counter[str]:
        """Failed calls by error class."""
        return Counter(v for v in self.outcome.values() if v != "ok")

    def ok_keys(self) -> list[str]:
        """Keys of the calls that were answered."""
        return [k for k, v in self.outcome.items() if v == "ok"]

    def first_ok_after(self, moment: float) -> float | None:
        """When the first call started after ``moment`` was answered (None: none was)."""
        times = [
            self.started[k] + self.took[k]
            for k, v in self.outcome.items()
            if v == "ok" and self.started[k] >= moment
        ]
        return min(times) if times else None

    def last(self, count: int) -> list[str]:
        """The keys of the ``count`` calls started last."""
        return sorted(self.outcome, key=self.started.__getitem__)[-count:]


async def call_record(load: Load, channel: str, key: str, timeout: float) -> None:
    """One ``record`` call; its outcome (or error class name) goes into ``load``."""
    start = load.started[key] = time.monotonic()
    try:
        reply = await servicebus.acall(channel, "record", key, timeout=timeout)
    except Exception as exc:  # the tests assert which kinds are allowed
        load.outcome[key] = type(exc).__name__
    else:
        load.outcome[key] = "ok"
        load.worker[key] = str(reply.get("worker")) if isinstance(reply, dict) else ""
        if not isinstance(reply, dict) or reply.get("key") != key:
            load.misrouted += 1
    load.took[key] = time.monotonic() - start


async def run_load(
    load: Load,
    channels: list[str],
    *,
    loops: int,
    until: asyncio.Event,
    timeout: float,
    prefix: str,
    max_calls: int = 200_000,
) -> None:
    """``loops`` concurrent callers over ``channels`` until ``until`` is set (bounded)."""
    counter = iter(range(max_calls))

    async def loop() -> None:
        for i in counter:
            if until.is_set():
                return
            key = f"{prefix}-{i}"
            await call_record(load, channels[i % len(channels)], key, timeout)
            if load.outcome[key] != "ok":
                await asyncio.sleep(0.05)  # as a real caller would, not a busy loop

    await asyncio.gather(*(loop() for _ in range(loops)))


async def load_until_recovered(
    load: Load,
    running: asyncio.Task[None],
    stop: asyncio.Event,
    since: float,
    *,
    bound: float,
    settle: float = 2.0,
) -> float | None:
    """Keep the load on until calls succeed again after ``since``, then ``settle`` s more.

    Gives up ``bound`` + ``settle`` s after ``since``; returns the first answer's time.
    """
    recovered: float | None = None
    while time.monotonic() - since < bound + settle:
        await asyncio.sleep(0.1)
        recovered = load.first_ok_after(since)
        if recovered is not None and time.monotonic() - recovered > settle:
            break
    stop.set()
    await asyncio.wait_for(running, 30)
    return recovered
