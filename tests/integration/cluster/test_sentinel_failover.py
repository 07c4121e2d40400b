"""Sentinel failover under load: a master + replica + 3 sentinels, two runworker processes
and 16 concurrent callers (1 s timeout each) in this process.

Typed errors only, no call hangs, calls answered again within a stated bound after the
promotion, and no request runs twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.cluster.support import Failover, check_failover, failover_under_load
from tests.support.redis_sentinel import RedisSentinels

pytestmark = pytest.mark.redis

# From the moment the new master serves (sentinels name it, it says "master") to the
# first call answered again: connections to the old master fail, new ones ask the
# sentinels; receives retry with a backoff of up to 1 s, the reply drainer up to 2 s.
RECOVERY_BOUND = 5.0


@pytest.fixture
def sentinels() -> Iterator[RedisSentinels]:
    with RedisSentinels(count=3, down_after_ms=1000, failover_timeout_ms=3000) as made:
        yield made


def _report(how: str, result: Failover) -> None:
    load, recovery = result.load, result.recovery
    print(
        f"\nSENTINEL {how}: promoted {result.promoted_at - result.failed_at:.2f}s after; "
        f"{len(load.outcome)} calls; errors {dict(load.errors())}; slowest "
        f"{max(load.took.values()):.2f}s; first answer "
        f"{recovery if recovery is None else round(recovery, 2)}s after promotion; "
        f"ran twice {sum(1 for c in result.counts.values() if c > 1)}"
    )


async def _under_load(settings: Any, sentinels: RedisSentinels, record_dir: Path, how: str) -> None:
    config = {"hosts": [sentinels.host_entry()], "capacity": 1000}

    async def fail() -> None:
        old = sentinels.master_port()
        if how == "kill":
            sentinels.kill(old)
            await asyncio.to_thread(sentinels.wait_promoted, old)
        else:
            # A planned switchover of a live master, as docs/scaling.md tells operators
            # to do it: writes on the old master paused first (CLIENT PAUSE WRITE), so
            # nothing is popped there that the promoted replica still holds (without the
            # pause both are masters for a while and such a request can run twice);
            # SENTINEL FAILOVER promotes the replica; the old master is made its replica
            # at once (Sentinel itself would take ~8 s more) and unpaused, so connections
            # to it see READONLY and UNBLOCKED.
            with redis.Redis(port=old, socket_timeout=5) as r:
                r.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")
            with redis.Redis(port=sentinels.ports[0], socket_timeout=5) as s:
                s.execute_command("SENTINEL", "FAILOVER", "mymaster")
            new = await asyncio.to_thread(sentinels.wait_promoted, old)
            with redis.Redis(port=old, socket_timeout=5) as r:
                r.execute_command("REPLICAOF", "127.0.0.1", new)
                r.execute_command("CLIENT", "UNPAUSE")

    result = await failover_under_load(
        settings, config, record_dir, prefix=how, fail=fail, bound=RECOVERY_BOUND
    )
    _report(how, result)
    check_failover(result, RECOVERY_BOUND)


async def test_master_killed_under_load(settings, sentinels: RedisSentinels, tmp_path: Path):
    await _under_load(settings, sentinels, tmp_path, "kill")


async def test_master_demoted_under_load(settings, sentinels: RedisSentinels, tmp_path: Path):
    await _under_load(settings, sentinels, tmp_path, "demote")
