"""Many changes while the relay and the consumer are SIGKILLed and restarted: nothing lost."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.db import connections

from servicebus.outbox.constants import deadletter_stream
from servicebus.outbox.models import InboxEvent, OutboxEvent
from tests.integration.outbox.outbox_helpers import (
    manage,
    manage_ok,
    proc_env,
    replica_state,
    source_state,
    wait_until,
)

pytestmark = [pytest.mark.redis]


class Procs:
    """The producer, relay and consumer subprocesses, with their stderr kept in files."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.started = env, logs, 0
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.log_of: dict[str, Path] = {}

    def start(self, role: str, *args: str) -> None:
        self.started += 1
        self.log_of[role] = self.logs / f"{role}-{self.started}.log"
        with self.log_of[role].open("wb") as log:
            self.running[role] = manage(self.env, *args, stdout=subprocess.DEVNULL, stderr=log)

    def wait_ready(self, role: str, timeout: float = 30.0) -> None:
        """Wait for the start-up log line, written after the SIGTERM handler is installed."""
        ready = wait_until(lambda: " started" in self.log_of[role].read_text(), timeout, 0.1)
        assert ready, f"{role} did not start: {self.stderr()}"

    def start_relay(self) -> None:
        self.start("relay", "servicebus_relay")

    def start_consumer(self) -> None:
        self.start(
            "consumer", "servicebus_consume", "--group", "replica", "--topic", "test.product"
        )

    def kill(self, role: str) -> None:
        self.running[role].send_signal(signal.SIGKILL)
        self.running[role].wait(timeout=10)

    def stderr(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.logs.glob("*.log")))

    def stop_all(self) -> None:
        for proc in self.running.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


class OrmProbe:
    """Reads the test database through a Django alias."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def unpublished(self) -> int:
        return OutboxEvent.objects.using(self.alias).filter(published_at__isnull=True).count()

    def events(self) -> int:
        return OutboxEvent.objects.using(self.alias).filter(topic="test.product").count()

    def inbox(self) -> int:
        return InboxEvent.objects.using(self.alias).filter(group="replica").count()

    def source(self) -> dict[int, tuple]:
        return source_state(self.alias)

    def replica(self) -> dict[int, tuple]:
        return replica_state(self.alias)


class SqliteProbe:
    """Reads a subprocess's SQLite file directly (no Django alias for it in this session)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _query(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.path, timeout=30) as conn:
            return conn.execute(sql).fetchall()

    def unpublished(self) -> int:
        sql = "select count(*) from servicebus_outbox_outboxevent where published_at is null"
        return int(self._query(sql)[0][0])

    def events(self) -> int:
        sql = "select count(*) from servicebus_outbox_outboxevent where topic = 'test.product'"
        return int(self._query(sql)[0][0])

    def inbox(self) -> int:
        sql = "select count(*) from servicebus_outbox_inboxevent where \"group\" = 'replica'"
        return int(self._query(sql)[0][0])

    def _table(self, table: str) -> dict[int, tuple]:
        rows = self._query(f"select id, revision, sku, name, price, stock from {table}")
        return {r[0]: tuple(r[1:]) for r in rows}

    def source(self) -> dict[int, tuple]:
        return self._table("outbox_testapp_product")

    def replica(self) -> dict[int, tuple]:
        return self._table("outbox_testapp_productreplica")


Probe = OrmProbe | SqliteProbe


def run_with_kills(env: dict[str, str], probe: Probe, changes: int, kills: int, logs: Path) -> None:
    """Produce changes; SIGKILL relay and consumer in turn; then expect convergence."""
    rng = random.Random(3)
    procs = Procs(env, logs)
    procs.start("producer", "outbox_test_produce", "--changes", str(changes), "--keys", "400")
    procs.start_relay()
    procs.start_consumer()
    killed = 0
    try:
        deadline = time.monotonic() + 60
        while killed < kills and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.6, 1.4))
            role = "relay" if killed % 2 == 0 else "consumer"
            procs.kill(role)
            procs.start_relay() if role == "relay" else procs.start_consumer()
            killed += 1
        assert procs.running["producer"].wait(timeout=120) == 0, procs.stderr()

        def converged() -> bool:
            return probe.unpublished() == 0 and probe.replica() == probe.source()

        assert wait_until(converged, timeout=60, interval=0.5), procs.stderr()
        for role in ("relay", "consumer"):  # graceful stop on SIGTERM
            procs.wait_ready(role)
            procs.running[role].send_signal(signal.SIGTERM)
            assert procs.running[role].wait(timeout=15) == 0, procs.stderr()
    finally:
        procs.stop_all()
    assert killed == kills
    assert probe.inbox() == probe.events()  # every event processed exactly once
    assert len(probe.source()) > 50


SETTINGS = dict(
    PUBLISH_ON_COMMIT=False,  # the relay is the only publisher: its deaths matter
    RELAY_POLL_INTERVAL=0.05,
    RELAY_BATCH_SIZE=200,
    CONSUMER_BLOCK_SECONDS=0.2,
    VISIBILITY_TIMEOUT=1.0,
    MAX_DELIVERIES=50,  # kills are not handler failures: nothing may be dead-lettered
)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_10k_changes_survive_sigkilled_relay_and_consumer_on_postgres(redis_flushed, tmp_path):
    if "pg" not in connections.databases:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not answering")
    env = proc_env(f"pg:{connections['pg'].settings_dict['NAME']}", redis_flushed, **SETTINGS)
    run_with_kills(env, OrmProbe("pg"), changes=10_000, kills=8, logs=tmp_path)
    client = redis.Redis.from_url(redis_flushed)
    assert client.xlen(deadletter_stream("test.product")) == 0


def test_changes_survive_sigkilled_relay_and_consumer_on_sqlite(redis_flushed, tmp_path):
    # A file database the subprocesses share (IMMEDIATE transactions, see proc_settings).
    db = tmp_path / "crash.sqlite3"
    env = proc_env(f"sqlite:{db}", redis_flushed, **SETTINGS)
    manage_ok(env, "migrate", "-v", "0")
    run_with_kills(env, SqliteProbe(db), changes=2_000, kills=4, logs=tmp_path)
    client = redis.Redis.from_url(redis_flushed)
    assert client.xlen(deadletter_stream("test.product")) == 0
