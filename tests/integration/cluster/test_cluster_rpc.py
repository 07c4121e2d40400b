"""RPC between real runworker processes over a real Redis Cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.cluster.support import start_worker, use_layer
from tests.support.load import Load, call_record, recorded
from tests.support.redis_cluster import RedisCluster

pytestmark = pytest.mark.redis

# Request channels whose keys sit on different masters (checked below).
CHANNELS = [f"svc{i}.request" for i in range(6)]


async def test_calls_between_worker_processes_over_the_cluster(
    settings, cluster_flushed: RedisCluster, tmp_path: Path
) -> None:
    config = {"hosts": cluster_flushed.urls[:3], "cluster": True, "capacity": 1000}
    assert len({cluster_flushed.master_of("asgi" + c) for c in CHANNELS}) == 3
    use_layer(settings, config)
    workers = [
        start_worker(config, tmp_path, CHANNELS, name=f"w{i}", concurrency=32) for i in range(2)
    ]
    load = Load()
    try:
        # 1,200 calls, 100 at a time, over 6 channels on 3 masters; replies come back to
        # this process's '!' key on its own slot.
        for start in range(0, 1200, 100):
            await asyncio.gather(
                *(
                    call_record(load, CHANNELS[i % 6], f"c-{i}", timeout=10)
                    for i in range(start, start + 100)
                )
            )
    finally:
        for worker in workers:
            worker.stop()
    counts = recorded(tmp_path)
    assert load.errors() == {}, load.errors()
    assert load.misrouted == 0
    assert len(load.ok_keys()) == 1200
    assert all(counts[key] == 1 for key in load.outcome), "a request ran twice or never"
    assert sum(counts.values()) == 1200
    assert set(load.worker.values()) == {"w0", "w1"}  # both workers took requests
