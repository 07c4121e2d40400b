"""Calls under load to ``record`` services, and the record files of what those ran.

A test's worker project (tests/chaos/project, tests/integration/cluster/project) answers
``record`` with ``{"key", "worker"}`` and appends each key it runs to
``<record dir>/<worker name>.keys`` (``KeyRecord``); ``recorded(dir)`` counts how many
times each key ran, over every worker. ``Load`` keeps every call's outcome, start and
duration by key; ``run_load`` keeps concurrent callers going until told to stop.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import servicebus


class KeyRecord:
    """Appends each key a worker runs to ``<$directory_env>/<name>.keys`` (worker side)."""

    def __init__(self, directory_env: str, name: str) -> None:
        self.directory_env = directory_env
        self.name = name
        self._fd: int | None = None

    def __call__(self, key: str) -> None:
        # One O_APPEND write per key: survives SIGKILL, a Redis restart or failover, and
        # never interleaves with another worker's lines.
        if self._fd is None:
            path = os.path.join(os.environ[self.directory_env], f"{self.name}.keys")
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, f"{key}\n".encode())


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


async def call_record(
    load: Load, channel: str, key: str, timeout: float, delay: float = 0.0
) -> None:
    """One ``record`` call; its outcome (or error class name) goes into ``load``.

    ``delay``: the handler sleeps that long first (body ``{"key", "delay"}``).
    """
    body: Any = {"key": key, "delay": delay} if delay else key
    start = load.started[key] = time.monotonic()
    try:
        reply = await servicebus.acall(channel, "record", body, timeout=timeout)
    except Exception as exc:  # the tests assert which kinds are allowed
        load.outcome[key] = type(exc).__name__
    else:
        load.outcome[key] = "ok"
        load.worker[key] = str(reply.get("worker")) if isinstance(reply, dict) else ""
        if not isinstance(reply, dict) or reply.get("key") != key:
            load.misrouted += 1
    load.took[key] = time.monotonic() - start


async def call_keys(
    load: Load, channel: str, keys: Iterable[str], *, loops: int, timeout: float
) -> None:
    """``loops`` concurrent callers making one ``record`` call per key, until none is left."""
    pending = iter(keys)

    async def loop() -> None:
        for key in pending:
            await call_record(load, channel, key, timeout)

    await asyncio.gather(*(loop() for _ in range(loops)))


async def run_load(
    load: Load,
    channels: list[str],
    *,
    loops: int,
    until: asyncio.Event,
    timeout: float,
    prefix: str,
    max_calls: int,
    delay: float = 0.0,
) -> None:
    """``loops`` concurrent callers over ``channels`` until ``until`` is set (at most
    ``max_calls`` calls in all)."""
    counter = iter(range(max_calls))

    async def loop() -> None:
        for i in counter:
            if until.is_set():
                return
            key = f"{prefix}-{i}"
            await call_record(load, channels[i % len(channels)], key, timeout, delay)
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
    stop_within: float = 30.0,
) -> float | None:
    """Keep the load on until calls succeed again after ``since``, then ``settle`` s more.

    Gives up ``bound`` + ``settle`` s after ``since``; then stops the load, which must end
    within ``stop_within`` s. Returns when the first call started after ``since`` was
    answered (None: none was).
    """
    recovered: float | None = None
    while time.monotonic() - since < bound + settle:
        await asyncio.sleep(0.1)
        recovered = load.first_ok_after(since)
        if recovered is not None and time.monotonic() - recovered > settle:
            break
    stop.set()
    await asyncio.wait_for(running, stop_within)
    return recovered
