"""Helpers for the outbox integration tests: snapshots, stream reads, subprocess commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from servicebus.outbox.constants import event_stream
from tests.integration.outbox.testapp.models import Product, ProductReplica

ROOT = Path(__file__).resolve().parents[3]
FIELDS = ("revision", "sku", "name", "price", "stock")


def source_state(using: str) -> dict[int, tuple[Any, ...]]:
    """Product rows as {pk: (revision, sku, name, price, stock)}."""
    return {r[0]: tuple(r[1:]) for r in Product.objects.using(using).values_list("pk", *FIELDS)}


def replica_state(using: str) -> dict[int, tuple[Any, ...]]:
    """ProductReplica rows in the same shape as source_state."""
    return {
        r[0]: tuple(r[1:]) for r in ProductReplica.objects.using(using).values_list("pk", *FIELDS)
    }


def stream_event_ids(client: redis.Redis, topic: str) -> list[str]:
    """The event ids in a topic stream, in stream order (duplicates kept)."""
    return [fields["id"] for _, fields in client.xrange(event_stream(topic))]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass; return the last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def proc_env(db: str, redis_url: str, **outbox: Any) -> dict[str, str]:
    """Environment for a subprocess on tests.integration.outbox.proc_settings."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.integration.outbox.proc_settings",
        PYTHONPATH=str(ROOT),
        OUTBOX_TEST_DB=db,
        SERVICEBUS_REDIS_URL=redis_url,
        OUTBOX_TEST_SETTINGS=json.dumps(outbox),
    )
    return env


def manage(env: dict[str, str], *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``django-admin <args>`` with the test settings as a subprocess."""
    return subprocess.Popen(
        [sys.executable, "-m", "django", *args], env=env, cwd=str(ROOT), **popen
    )


def manage_ok(env: dict[str, str], *args: str, timeout: float = 60.0) -> str:
    """Run a command to completion; return its stdout or fail with its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise AssertionError(f"{args} exited {done.returncode}: {done.stderr[-3000:]}")
    return done.stdout
