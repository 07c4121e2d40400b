"""The run/backoff/stop loop shared by long-running processes, sync and async."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from servicebus.errors import BusMisconfigured, BusUnavailable
from servicebus.runner import Runner, run_async_main


def test_sync_loop_retries_with_backoff_and_stops() -> None:
    runner = Runner("t", retry_on=(BusUnavailable,), initial_backoff=0.01, max_backoff=0.02)
    calls: list[float] = []

    def step() -> float | None:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise BusUnavailable("down")
        if len(calls) == 4:
            runner.stop()
        return 0.0

    runner.run(step)
    assert len(calls) == 4 and runner.failures == 2
    assert calls[1] - calls[0] >= 0.005  # waited before retrying


def test_sync_loop_raises_fatal_and_unexpected_errors() -> None:
    runner = Runner("t", retry_on=(BusUnavailable,))

    def misconfigured() -> None:
        raise BusMisconfigured("bad password")

    with pytest.raises(BusMisconfigured):
        runner.run(misconfigured)

    def bug() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        runner.run(bug)


def test_stop_from_another_thread_ends_a_long_pause() -> None:
    runner = Runner("t")
    threading.Timer(0.05, runner.stop).start()
    start = time.monotonic()
    runner.run(lambda: 30.0)
    assert time.monotonic() - start < 5


def test_sigterm_stops_a_sync_loop() -> None:
    runner = Runner("t")
    runner.install_signal_handlers()
    try:
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
        start = time.monotonic()
        runner.run(lambda: 0.01)
        assert runner.stopping and time.monotonic() - start < 5
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def test_async_loop_sigterm_and_uvloop_main() -> None:
    runner = Runner("t", retry_on=(BusUnavailable,), initial_backoff=0.01)
    steps = 0

    async def step() -> float | None:
        nonlocal steps
        steps += 1
        if steps == 1:
            raise BusUnavailable("down")
        return 0.01

    async def main() -> str:
        runner.install_signal_handlers()
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, os.kill, os.getpid(), signal.SIGTERM)
        await runner.arun(step)
        return type(loop).__module__

    try:
        module = run_async_main(main())
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert runner.stopping and steps > 2 and runner.failures == 1
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return
    assert module.startswith("uvloop")


async def test_aretry_until_success_or_stop() -> None:
    runner = Runner("t", retry_on=(BusUnavailable,), initial_backoff=0.01)
    attempts = 0

    async def connect() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise BusUnavailable("down")
        return "ok"

    assert await runner.aretry(connect) == ("ok",)
    assert attempts == 3

    async def never() -> str:
        raise BusUnavailable("down")

    asyncio.get_running_loop().call_later(0.05, runner.stop)
    assert await runner.aretry(never) is None


async def test_aretry_retries_only_its_own_errors_and_never_fatal_ones() -> None:
    # The worker's runner retries everything in its loops, but its startup check only
    # what a later attempt can fix.
    runner = Runner("t", retry_on=(Exception,), initial_backoff=0.01)
    calls: list[type[BaseException]] = []

    def failing(*errors: BaseException) -> Callable[[], Awaitable[str]]:
        pending = list(errors)

        async def attempt() -> str:
            error = pending.pop(0)
            calls.append(type(error))
            raise error

        return attempt

    with pytest.raises(ValueError):
        await runner.aretry(
            failing(BusUnavailable("down"), ValueError("bug")), retry_on=(BusUnavailable,)
        )
    assert calls == [BusUnavailable, ValueError]
    assert runner.failures == 1
    with pytest.raises(BusMisconfigured):
        await runner.aretry(failing(BusMisconfigured("bad password")))
    assert runner.failures == 1
