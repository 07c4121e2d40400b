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

from tests.integration.cluster.support import (
    FAILOVER_CHANNELS,
    check_failover,
    failover_under_load,
)
from tests.support.redis_cluster import RedisCluster

pytestmark = pytest.mark.redis

# From the new master's promotion to the first call answered again. A killed master is
# failed over by the cluster itself in about 2-3 s (node timeout 1 s + election); then
# the layer's slot map refresh and the workers' pop retries (backoff up to 1 s) follow.
RECOVERY_BOUND = 5.0


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
    key = "asgi" + FAILOVER_CHANNELS[0]
    old: int | None = None
    new: int | None = None

    async def fail() -> None:
        nonlocal old, new
        old = cluster.master_of(key)
        if how == "kill":
            cluster.kill(old)
        else:
            replica = cluster.replica_of(old)
            with cluster.client(replica) as client:
                client.execute_command("CLUSTER", "FAILOVER")
        new = await asyncio.to_thread(_wait_promoted, cluster, key, old)

    try:
        result = await failover_under_load(
            settings, config, record_dir, prefix=how, fail=fail, bound=RECOVERY_BOUND
        )
    finally:
        if how == "kill" and old is not None:
            cluster.node(old).start()  # it rejoins as a replica of the new master
    load, recovery = result.load, result.recovery
    print(
        f"\nCLUSTER {how}: master {old} -> {new} promoted "
        f"{result.promoted_at - result.failed_at:.2f}s after; {len(load.outcome)} calls "
        f"({result.before} before); errors {dict(load.errors())}; slowest "
        f"{max(load.took.values()):.2f}s; first answer "
        f"{recovery if recovery is None else round(recovery, 2)}s after promotion; "
        f"ran twice {sum(1 for c in result.counts.values() if c > 1)}"
    )
    check_failover(result, RECOVERY_BOUND)


async def test_manual_failover_under_load(settings, cluster: RedisCluster, tmp_path: Path):
    # CLUSTER FAILOVER: the replica catches up, then takes over; the old master becomes
    # its replica and answers MOVED (blocked pops get UNBLOCKED).
    await _fail_over_under_load(settings, cluster, tmp_path, "manual")


async def test_master_killed_under_load(settings, cluster: RedisCluster, tmp_path: Path):
    # SIGKILL: the cluster notices after the node timeout and promotes the replica.
    await _fail_over_under_load(settings, cluster, tmp_path, "kill")
