"""Several consumer processes on one channel: every message is delivered exactly to one."""

from __future__ import annotations

import pytest

from servicebus.layers import RedisChannelLayer
from tests.support.consumers import check_each_delivered_once, share_among_consumers

pytestmark = pytest.mark.redis


async def test_three_consumer_processes_never_share_a_message(redis_flushed: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_flushed], capacity=10_000)
    config = {"hosts": [redis_flushed], "capacity": 10_000, "block_timeout": 0.2}
    try:
        per_process = await share_among_consumers(layer, config, ["work.queue"], total=3000)
    finally:
        await layer.close()
    check_each_delivered_once(per_process, 3000)
