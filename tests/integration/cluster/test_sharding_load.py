"""Sharding over 3 plain Redis hosts under load, with real processes on every side.

Three runworker processes serve six request channels spread over the three hosts; three
caller processes, each with its reply key on a different host, make 1,000 calls each,
32 at a time. Every call is answered, by exactly one execution.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from servicebus.layers import RedisChannelLayer
from tests.integration.cluster.support import start_worker
from tests.support.load import recorded
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[3]
CALLER = Path(__file__).with_name("caller.py")
CALLS = 1000  # per caller process


@pytest.fixture
def three_hosts() -> Iterator[list[RedisServer]]:
    with RedisServer() as a, RedisServer() as b, RedisServer() as c:
        yield [a, b, c]


def _command_calls(server: RedisServer, command: str) -> int:
    with redis.Redis.from_url(server.url) as client:
        stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def test_calls_over_three_shards_under_load(three_hosts: list[RedisServer], tmp_path: Path):
    config = {"hosts": [s.url for s in three_hosts], "capacity": 1000}
    probe = RedisChannelLayer(**config)
    channels = [f"svc{i}.request" for i in range(6)]
    assert {probe.consistent_hash(c) for c in channels} == {0, 1, 2}
    workers = [
        start_worker(config, tmp_path, channels, name=f"w{i}", concurrency=32) for i in range(3)
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    callers: list[subprocess.Popen[str]] = []
    try:
        args = [sys.executable, str(CALLER), json.dumps(config), ",".join(channels)]
        callers += [
            subprocess.Popen(
                [*args, str(shard), str(CALLS), "32", f"s{shard}"],
                stdout=subprocess.PIPE,
                env=env,
                text=True,
            )
            for shard in range(3)
        ]
        outputs = [json.loads(c.communicate(timeout=90)[0]) for c in callers]
        alive = [w.alive() for w in workers]
    finally:
        for caller in callers:
            if caller.poll() is None:
                caller.kill()
                caller.wait()
        for worker in workers:
            worker.stop()
    counts = recorded(tmp_path)
    assert sorted(o["shard"] for o in outputs) == [0, 1, 2]  # replies on every shard
    for out in outputs:
        assert out["errors"] == {}, out["errors"]
        assert len(out["ok"]) == CALLS
    assert sum(counts.values()) == 3 * CALLS
    assert all(count == 1 for count in counts.values()), "a request ran twice"
    # Every host carried requests (pops) and sends (the send script) for the load.
    for server in three_hosts:
        assert _command_calls(server, "bzmpop") > 10
        assert _command_calls(server, "evalsha") > 10
    assert all(alive)
