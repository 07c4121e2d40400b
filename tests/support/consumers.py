"""At-most-once across processes: consumer processes share a load, each message once.

``share_among_consumers`` starts consumer processes (consumer_process.py) on some
channels, sends them numbered messages and returns the ids each one got;
``check_each_delivered_once`` asserts that no id came twice, none was lost, and the
load really was shared.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.processes import ROOT

CONSUMER = Path(__file__).with_name("consumer_process.py")


async def share_among_consumers(
    layer: Any,
    config: dict[str, Any],
    channels: list[str],
    *,
    total: int,
    processes: int = 3,
    idle: float = 1.5,
) -> list[list[str]]:
    """Send ``{"id": i}`` for i < ``total`` through ``layer`` (round robin over ``channels``,
    100 at a time) to ``processes`` consumers on layer CONFIG ``config``; their ids each."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(CONSUMER), json.dumps(config), ",".join(channels), str(idle)]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, env=env, text=True) for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for start in range(0, total, 100):
            await asyncio.gather(
                *(
                    layer.send(channels[i % len(channels)], {"id": i})
                    for i in range(start, min(start + 100, total))
                )
            )
        outputs = [proc.communicate(timeout=90)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [out.split() for out in outputs]


def check_each_delivered_once(per_process: list[list[str]], total: int) -> None:
    """Every id below ``total`` reached exactly one process, and two or more got some."""
    received = [i for ids in per_process for i in ids]
    assert len(received) == len(set(received)), "a message was delivered twice"
    assert sorted(map(int, received)) == list(range(total)), "a message was lost"
    assert sum(1 for ids in per_process if ids) >= 2  # the load really was shared
