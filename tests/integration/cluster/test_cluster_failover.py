"""A cluster master fails over under load: typed errors only, recovery, nothing twice.

Real processes throughout: a 3+3 cluster of this module alone, two runworker
processes, and this process calling with 16 concurrent callers (1 s timeout each).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster.support import ALLOWED, start_worker, use_layer
from tests.support.load import Load, load_until_recovered, recorded, run_load
from tests.support.redis_cluster import RedisCluster

pytestmark = pytest.mark.redis

TIMEOUT = 1.0  # per call
# From the new master's promotion to the first call answered again. A killed master is
# failed over by the cluster itself in about 2-3 s (node timeout 1 s + election); then
# the layer's slot map refresh and the workers' pop retries (backoff up to 1 s) follow.
RECOVERY_BOUND = 5.0
CHANNELS = ["orders.request", "stock.request"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    """A cluster of this module: its masters are failed over."""
    with RedisCluster(masters=3, replicas=1) as made:
        yield made


def _wait_promoted(cluster: RedisCluster, key: str, old: int, timeout: float = 20.0) -> int:
    """Until a master other than ``old`` serves ``key``; its port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            port = cluster.master_of(key)
        except RuntimeError:
            port = old  # no online master right now
        if port != old:
            return port
        time.sleep(0.05)
    raise TimeoutError(f"no replica took over {key} from {old} in {timeout}s")


async def _fail_over_under_load(
    settings, cluster: RedisCluster, record_dir: Path, how: str
) -> None:
    cluster.wait_healthy()
    config = {"hosts": cluster.urls[:3], "cluster": True, "capacity": 1000}
    use_layer(settings, config)
    key = "asgi" + CHANNELS[0]
    workers = [start_worker(config, record_dir, CHANNELS, name=f"w{i}") for i in range(2)]
    load = Load()
    stop = asyncio.Event()
    try:
        running = asyncio.create_task(
            run_load(
                load,
                CHANNELS,
                loops=16,
                until=stop,
                timeout=TIMEOUT,
                prefix=how,
                max_calls=200_000,
            )
        )
        await asyncio.sleep(1.5)
        before = len(load.ok_keys())
        old = cluster.master_of(key)
        failed_at = time.monotonic()
        if how == "kill":
            cluster.kill(old)
        else:
            replica = cluster.replica_of(old)
            with cluster.client(replica) as client:
                client.execute_command("CLUSTER", "FAILOVER")
        new = await asyncio.to_thread(_wait_promoted, cluster, key, old)
        promoted_at = time.monotonic()
        recovered_at = await load_until_recovered(
            load, running, stop, promoted_at, bound=RECOVERY_BOUND
        )
        alive = [w.alive() for w in workers]
    finally:
        stop.set()
        for worker in workers:
            worker.stop()
        if how == "kill":
            cluster.node(old).start()  # it rejoins as a replica of the new master
    counts = recorded(record_dir)
    errors = load.errors()
    slowest = max(load.took.values())
    recovery = None if recovered_at is None else recovered_at - promoted_at
    print(
        f"\nCLUSTER {how}: master {old} -> {new} promoted "
        f"{promoted_at - failed_at:.2f}s after; {len(load.outcome)} calls ({before} before); "
        f"errors {dict(errors)}; slowest {slowest:.2f}s; first answer "
        f"{recovery if recovery is None else round(recovery, 2)}s after promotion; "
        f"ran twice {sum(1 for c in counts.values() if c > 1)}"
    )
    assert before > 100  # the load was real
    assert set(load.outcome.values()) <= ALLOWED, errors  # typed errors only
    assert slowest < TIMEOUT + 2  # never a hang
    assert recovery is not None and recovery < RECOVERY_BOUND
    assert all(load.outcome[k] == "ok" for k in load.last(100))  # recovered for good
    assert all(c == 1 for c in counts.values()), "a request ran twice"
    assert all(counts[k] == 1 for k in load.ok_keys())  # every answer from one execution
    assert load.misrouted == 0
    assert all(alive)


async def test_manual_failover_under_load(settings, cluster: RedisCluster, tmp_path: Path):
    # CLUSTER FAILOVER: the replica catches up, then takes over; the old master becomes
    # its replica and answers MOVED (blocked pops get UNBLOCKED).
    await _fail_over_under_load(settings, cluster, tmp_path, "manual")


async def test_master_killed_under_load(settings, cluster: RedisCluster, tmp_path: Path):
    # SIGKILL: the cluster notices after the node timeout and promotes the replica.
    await _fail_over_under_load(settings, cluster, tmp_path, "kill")
