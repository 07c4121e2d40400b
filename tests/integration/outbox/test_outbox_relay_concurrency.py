"""Several relays at once publish each outbox row exactly once (Postgres locks, SQLite claims)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter

import pytest
import redis
from django.db import connections, transaction

from servicebus.outbox import publish_event
from servicebus.outbox.models import OutboxEvent
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


@pytest.mark.django_db(transaction=True)
def test_relay_stalled_past_its_claim_does_not_publish_the_row_again(
    outbox_settings, redis_client, monkeypatch
):
    # SQLite claim path: relay A claims the row, then stalls (GC pause, slow host) longer than
    # RELAY_CLAIM_TIMEOUT; relay B takes the lapsed claim and publishes. A must not publish.
    from servicebus.outbox import relay

    outbox_settings.update(PUBLISH_ON_COMMIT=False, RELAY_CLAIM_TIMEOUT=0.2)
    event_id = publish_event("stall", {}, using="default")
    real_encode = relay.encode_fields
    second: list[relay.PublishResult] = []

    def stall_then_let_b_run(*args, **kwargs):
        if not second:  # only relay A's first row stalls
            second.append(relay.PublishResult())
            time.sleep(0.3)
            second[0] = relay.publish_pending(using="default")
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(relay, "encode_fields", stall_then_let_b_run)
    first = relay.publish_pending(using="default")
    assert second[0].published == 1  # B published the row A had let lapse
    assert first.published == 0
    assert stream_event_ids(redis_client, "stall") == [event_id]
    row = OutboxEvent.objects.using("default").get(pk=event_id)
    assert row.published_at is not None and row.attempts == 1 and row.claimed_by is None
