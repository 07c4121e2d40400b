"""Helpers of the chaos suite: worker processes, records, load loops, RSS, the wire format."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import redis

import servicebus
from tests.support.processes import ManagedProcess

CHANNEL = "chaos.request"
PREFIX = "asgi"  # channels_redis's default key prefix
SETTINGS = "tests.chaos.project.settings"


def start_worker(
    redis_url: str,
    record_dir: Path,
    *,
    name: str = "w0",
    capacity: int = 1000,
    concurrency: int = 64,
) -> ManagedProcess:
    """Start ``runworker chaos.request`` and wait until it serves."""
    args = [sys.executable, "-m", "django", "runworker", CHANNEL, "--settings", SETTINGS]
    args += ["--concurrency", str(concurrency)]
    env = {
        "CHAOS_REDIS_URL": redis_url,
        "CHAOS_RECORD_DIR": str(record_dir),
        "CHAOS_WORKER_NAME": name,
        "CHAOS_CAPACITY": str(capacity),
    }
    return ManagedProcess(args, env=env, name=name).start(ready="worker serving", timeout=60)


def recorded(record_dir: Path) -> Counter[str]:
    """How many times each key ran, over every worker's record file."""
    counts: Counter[str] = Counter()
    for path in record_dir.glob("*.keys"):
        counts.update(line for line in path.read_text().splitlines() if line)
    return counts


def rss_mb(proc: ManagedProcess) -> float:
    """Resident memory of a child process in MB (Linux /proc)."""
    assert proc.proc is not None
    for line in Path(f"/proc/{proc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def member(message: Any, *, raw: bytes | None = None) -> bytes:
    """A sorted-set member as channels_redis writes it: 12 random bytes + msgpack."""
    if raw is not None:
        return raw
    return os.urandom(12) + msgpack.packb(message, use_bin_type=True)


def zadd_members(url: str, key: str, members: Iterable[bytes], chunk: int = 200) -> int:
    """ZADD members straight into a channel key (scored by time, as the layer does)."""
    n = 0
    with redis.Redis.from_url(url) as client:
        batch: dict[bytes, float] = {}
        for m in members:
            batch[m] = time.time()
            n += 1
            if len(batch) >= chunk:
                client.zadd(key, batch)
                batch = {}
        if batch:
            client.zadd(key, batch)
    return n


def key_length(url: str, key: str) -> int:
    """Members waiting in a channel key."""
    with redis.Redis.from_url(url) as client:
        return int(client.zcard(key))


def reply_key(reply_channel: str) -> str:
    """The Redis key of a process-local (``!``) channel: prefix + name up to the ``!``."""
    return PREFIX + reply_channel[: reply_channel.index("!") + 1]


@dataclass
class Load:
    """Outcomes of a load run: per key its outcome, start and duration."""

    outcome: dict[str, str] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    took: dict[str, float] = field(default_factory=dict)
    misrouted: int = 0

    def errors(self) -> Counter[str]:
        """Failed calls by error class."""
        return Counter(v for v in self.outcome.values() if v != "ok")

    def ok_keys(self) -> list[str]:
        """Keys of the calls that were answered."""
        return [k for k, v in self.outcome.items() if v == "ok"]


async def call_record(load: Load, key: str, timeout: float, delay: float = 0.0) -> None:
    """One ``record`` call; its outcome goes into ``load`` (any exception is kept by name)."""
    body: Any = {"key": key, "delay": delay} if delay else key
    start = load.started[key] = time.monotonic()
    try:
        reply = await servicebus.acall(CHANNEL, "record", body, timeout=timeout)
    except Exception as exc:  # the tests assert which kinds are allowed
        load.outcome[key] = type(exc).__name__
    else:
        load.outcome[key] = "ok"
        if not isinstance(reply, dict) or reply.get("key") != key:
            load.misrouted += 1
    load.took[key] = time.monotonic() - start


async def run_load(
    load: Load,
    *,
    loops: int,
    until: asyncio.Event,
    timeout: float,
    prefix: str,
    delay: float = 0.0,
    max_calls: int = 100_000,
) -> None:
    """``loops`` concurrent callers making ``record`` calls until ``until`` is set (bounded)."""
    counter = iter(range(max_calls))

    async def loop() -> None:
        for i in counter:
            if until.is_set():
                return
            key = f"{prefix}-{i}"
            await call_record(load, key, timeout, delay)
            if load.outcome[key] != "ok":
                await asyncio.sleep(0.05)  # as a real caller would, not a busy loop

    await asyncio.gather(*(loop() for _ in range(loops)))


async def worker_stats() -> dict[str, Any]:
    """The counters of the worker that answers this call."""
    return dict(await servicebus.acall(CHANNEL, "stats", timeout=10))


def drop_count(stats: dict[str, Any]) -> int:
    """Messages a process dropped as malformed, over the layer's and servicebus's counters.

    The names differ between layer versions; every counter of a message refused for its
    content counts (not expiry, not capacity).
    """
    malformed = ("undecodable", "not_a_dict", "bad_channel", "malformed", "invalid")
    layer = sum(v for k, v in stats.get("layer", {}).items() if any(m in k for m in malformed))
    core = sum(
        v
        for k, v in stats.get("metrics", {}).items()
        if any(m in k for m in malformed) and not k.startswith("layer_")  # layer_*: mirrors
    )
    return int(layer + core)


def rng(seed: int | None = None) -> random.Random:
    """A seeded generator; the seed is printed so a failing run can be replayed."""
    seed = seed if seed is not None else int(os.environ.get("CHAOS_SEED", time.time_ns() % 10**6))
    print(f"chaos seed {seed} (CHAOS_SEED={seed} replays it)")
    return random.Random(seed)
