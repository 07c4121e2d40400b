"""10,000 changes while the relay and the consumer are SIGKILLed and restarted: nothing lost."""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest
import redis
from django.db import connections

from servicebus.outbox.constants import deadletter_stream
from servicebus.outbox.models import InboxEvent, OutboxEvent
from tests.integration.outbox.outbox_helpers import (
    manage,
    proc_env,
    replica_state,
    source_state,
    wait_until,
)

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, databases="__all__"),
]

CHANGES = 10_000
KILLS = 8


def start(env: dict[str, str], role: str) -> subprocess.Popen[bytes]:
    if role == "relay":
        args = ["servicebus_relay"]
    else:
        args = ["servicebus_consume", "--group", "replica", "--topic", "test.product"]
    return manage(env, *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_changes_survive_sigkilled_relay_and_consumer(redis_flushed):
    if "pg" not in connections.databases:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not answering")
    env = proc_env(
        f"pg:{connections['pg'].settings_dict['NAME']}",
        redis_flushed,
        PUBLISH_ON_COMMIT=False,  # the relay is the only publisher: its deaths matter
        RELAY_POLL_INTERVAL=0.05,
        RELAY_BATCH_SIZE=200,
        CONSUMER_BLOCK_SECONDS=0.2,
        VISIBILITY_TIMEOUT=1.0,
        MAX_DELIVERIES=50,  # kills are not handler failures: nothing may be dead-lettered
    )
    rng = random.Random(3)
    producer = manage(
        env,
        "outbox_test_produce",
        "--changes",
        str(CHANGES),
        "--keys",
        "400",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    procs = {"relay": start(env, "relay"), "consumer": start(env, "consumer")}
    killed = 0
    try:
        deadline = time.monotonic() + 90
        while killed < KILLS and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.8, 1.8))
            role = "relay" if killed % 2 == 0 else "consumer"
            procs[role].send_signal(signal.SIGKILL)
            procs[role].wait(timeout=10)
            procs[role] = start(env, role)
            killed += 1
        assert producer.wait(timeout=120) == 0, producer.stderr.read() if producer.stderr else ""

        def converged() -> bool:
            unpublished = OutboxEvent.objects.using("pg").filter(published_at__isnull=True)
            return not unpublished.exists() and replica_state("pg") == source_state("pg")

        assert wait_until(converged, timeout=90, interval=0.5), "replica did not converge"
        for role, proc in procs.items():  # graceful stop on SIGTERM
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0, (
                f"{role}: {proc.stderr.read() if proc.stderr else ''}"
            )
    finally:
        for proc in (producer, *procs.values()):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert killed == KILLS
    events = OutboxEvent.objects.using("pg").filter(topic="test.product").count()
    assert InboxEvent.objects.using("pg").filter(group="replica").count() == events
    client = redis.Redis.from_url(redis_flushed)
    assert client.xlen(deadletter_stream("test.product")) == 0
    assert len(source_state("pg")) > 100
