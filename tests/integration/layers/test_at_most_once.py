"""Several consumer processes on one channel: every message is delivered exactly to one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from servicebus.layers import RedisChannelLayer

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("consumer_process.py")


async def test_three_consumer_processes_never_share_a_message(redis_flushed: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), redis_flushed, "work.queue", "1.5"],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        layer = RedisChannelLayer(hosts=[redis_flushed], capacity=10_000)
        total = 3000
        for start in range(0, total, 100):
            await asyncio.gather(
                *(layer.send("work.queue", {"id": i}) for i in range(start, start + 100))
            )
        await layer.close()
        outputs = [proc.communicate(timeout=90)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    per_process = [out.split() for out in outputs]
    received = [i for ids in per_process for i in ids]
    assert len(received) == len(set(received)), "a message was delivered twice"
    assert sorted(map(int, received)) == list(range(total)), "a message was lost"
    assert sum(1 for ids in per_process if ids) >= 2  # the load really was shared
