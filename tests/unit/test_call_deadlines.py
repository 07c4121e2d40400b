"""Call deadlines in shared buckets (one timer per loop) and cheap request ids."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

import servicebus
from servicebus import CallTimeout
from servicebus.client import Deadlines, new_request_id, router_for
from servicebus.testing import serve
from servicebus.transport import get_transport
from tests.project.services import misc


async def test_a_deadline_fires_never_early_and_at_most_a_bucket_late() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    futures = [loop.create_future() for _ in range(3)]
    start = loop.time()
    for future, delay in zip(futures, (0.05, 0.05, 0.12), strict=True):
        deadlines.add(future, delay)
    with pytest.raises(TimeoutError):
        await futures[0]
    early = loop.time() - start
    with pytest.raises(TimeoutError):
        await futures[2]
    late = loop.time() - start
    assert futures[1].done()  # same bucket, expired together
    assert 0.05 <= early < 0.05 + 0.05
    assert 0.12 <= late < 0.12 + 0.05


async def test_a_discarded_deadline_never_fires_and_leaves_nothing_behind() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    future = loop.create_future()
    key = deadlines.add(future, 0.03)
    deadlines.discard(future, key)
    await asyncio.sleep(0.08)
    assert not future.done()
    assert deadlines._buckets == {}


async def test_answered_calls_leave_no_deadline_or_waiter_behind() -> None:
    async with serve(misc):
        await asyncio.gather(*(servicebus.acall("misc.request", "echo", i) for i in range(50)))
        router = router_for(get_transport())
        assert router._waiters == {}
        assert router._deadlines is not None
        assert router._deadlines._buckets == {}


async def test_calls_still_time_out_on_their_own_timeout() -> None:
    async with serve(misc):
        start = time.monotonic()
        results = await asyncio.gather(
            servicebus.acall("misc.request", "sleep", 0.5, timeout=0.1),
            servicebus.acall("misc.request", "echo", 1, timeout=0.1),
            return_exceptions=True,
        )
        elapsed = time.monotonic() - start
    assert isinstance(results[0], CallTimeout)
    assert results[1] == 1
    assert 0.1 <= elapsed < 1.0


def test_request_ids_are_unique_and_a_forked_child_draws_a_new_prefix() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    first = new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child[:16] != first[:16]  # not the parent's prefix: no id both could make
