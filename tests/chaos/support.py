"""Helpers of the chaos suite: worker processes, RSS, the wire format, counters, seeds.

Loads of ``record`` calls and the record files: tests.support.load.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack
import redis

import servicebus
from tests.support.processes import ManagedProcess, runworker

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
    env = {
        "CHAOS_REDIS_URL": redis_url,
        "CHAOS_RECORD_DIR": str(record_dir),
        "CHAOS_WORKER_NAME": name,
        "CHAOS_CAPACITY": str(capacity),
    }
    return runworker(
        [CHANNEL], concurrency=concurrency, settings=SETTINGS, extra_env=env, name=name, timeout=60
    )


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
