"""Several relays at once publish each outbox row exactly once (Postgres locks, SQLite claims)."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter

import pytest
import redis
from django.db import connections, transaction

from servicebus.outbox import publish_event
from servicebus.outbox.relay import Relay
from servicebus.outbox.settings import get_outbox_settings
from tests.integration.outbox.outbox_helpers import manage, manage_ok, proc_env, stream_event_ids

pytestmark = [pytest.mark.redis]

ROWS = 600


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_concurrent_relays_on_postgres_publish_each_row_once(outbox_settings, redis_client):
    if "pg" not in connections.databases:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not answering")
    outbox_settings.update(PUBLISH_ON_COMMIT=False, RELAY_BATCH_SIZE=40)
    with transaction.atomic(using="pg"):
        ids = [publish_event("load", {"i": i}, key=str(i), using="pg") for i in range(ROWS)]
    outbox_settings["PUBLISH_ON_COMMIT"] = True  # on-commit publishers race the relays too
    settings = get_outbox_settings()
    errors: list[BaseException] = []
    start = threading.Barrier(5)

    def relay() -> None:
        try:
            start.wait(timeout=10)
            Relay(using="pg", settings=settings).run(once=True)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    def producer() -> None:
        try:
            start.wait(timeout=10)
            for i in range(50):
                with transaction.atomic(using="pg"):
                    ids.append(publish_event("load", {"late": i}, using="pg"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=relay) for _ in range(4)]
    threads.append(threading.Thread(target=producer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    Relay(using="pg").run(once=True)  # whatever was committed after the relays finished
    published = Counter(stream_event_ids(redis_client, "load"))
    assert len(published) == ROWS + 50
    assert set(published) == set(ids)
    assert max(published.values()) == 1


def test_concurrent_relay_processes_on_sqlite_publish_each_row_once(redis_flushed, tmp_path):
    # The SQLite fallback (no SKIP LOCKED): an atomic claim by UPDATE, several processes.
    db = tmp_path / "relay.sqlite3"
    env = proc_env(f"sqlite:{db}", redis_flushed, PUBLISH_ON_COMMIT=False, RELAY_BATCH_SIZE=25)
    manage_ok(env, "migrate", "-v", "0")
    manage_ok(env, "outbox_test_produce", "--changes", str(ROWS), "--keys", "100000")
    relays = [manage(env, "servicebus_relay", "--once") for _ in range(3)]
    for proc in relays:
        assert proc.wait(timeout=60) == 0
    client = redis.Redis.from_url(redis_flushed, decode_responses=True)
    published = Counter(stream_event_ids(client, "test.product"))
    with sqlite3.connect(db) as conn:
        (rows,) = conn.execute("select count(*) from servicebus_outbox_outboxevent").fetchone()
        (left,) = conn.execute(
            "select count(*) from servicebus_outbox_outboxevent where published_at is null"
        ).fetchone()
    # Several changes to one row in one transaction are one event, so rows <= ROWS.
    assert rows > ROWS // 2 and left == 0
    assert len(published) == rows and max(published.values()) == 1
