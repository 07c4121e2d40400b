"""publish_event and the relay: nothing on rollback, delivery after commit or by the relay."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError, connections, transaction
from django.utils import timezone

from servicebus.context import bind
from servicebus.outbox import publish_event
from servicebus.outbox.constants import event_stream
from servicebus.outbox.models import OutboxEvent
from servicebus.outbox.relay import Relay, prune_published
from tests.integration.outbox.outbox_helpers import stream_event_ids, wait_until
from tests.support.redis_server import free_port

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True, databases="__all__")]


class Boom(Exception):
    pass


def test_rollback_publishes_nothing(alias, outbox_settings, redis_client):
    with pytest.raises(Boom), transaction.atomic(using=alias):
        publish_event("orders.placed", {"n": 1}, key="o1", using=alias)
        raise Boom
    assert not OutboxEvent.objects.using(alias).exists()
    Relay(using=alias).run(once=True)
    assert redis_client.xlen(event_stream("orders.placed")) == 0


def test_commit_publishes_with_id_and_correlation(alias, outbox_settings, redis_client):
    with bind("corr-42"), transaction.atomic(using=alias):
        event_id = publish_event("orders.placed", {"n": 1, "at": timezone.now()}, "o1", using=alias)
        assert redis_client.xlen(event_stream("orders.placed")) == 0  # not before commit
    [(_, fields)] = redis_client.xrange(event_stream("orders.placed"))
    assert fields["id"] == event_id
    assert fields["key"] == "o1"
    assert '"correlation_id":"corr-42"' in fields["headers"]
    row = OutboxEvent.objects.using(alias).get(pk=event_id)
    assert row.published_at is not None and row.attempts == 1


def test_autocommit_publish_is_its_own_transaction(alias, outbox_settings, redis_client):
    event_id = publish_event("orders.placed", [1, 2], using=alias)
    assert stream_event_ids(redis_client, "orders.placed") == [event_id]


def test_relay_delivers_when_process_died_before_publishing(alias, outbox_settings, redis_client):
    # PUBLISH_ON_COMMIT off stands for a process killed right after commit.
    outbox_settings["PUBLISH_ON_COMMIT"] = False
    with transaction.atomic(using=alias):
        ids = [publish_event("orders.placed", {"n": i}, using=alias) for i in range(5)]
    assert redis_client.xlen(event_stream("orders.placed")) == 0
    call_command("servicebus_relay", "--once", "--database", alias)
    assert stream_event_ids(redis_client, "orders.placed") == ids
    assert not OutboxEvent.objects.using(alias).filter(published_at__isnull=True).exists()
    Relay(using=alias).run(once=True)  # nothing left: nothing published twice
    assert stream_event_ids(redis_client, "orders.placed") == ids


def test_failed_publish_stays_for_the_relay(alias, outbox_settings, redis_client):
    good_url = outbox_settings["REDIS_URL"]
    outbox_settings["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    with transaction.atomic(using=alias):
        event_id = publish_event("orders.placed", {"n": 1}, using=alias)
    row = OutboxEvent.objects.using(alias).get(pk=event_id)
    assert row.published_at is None and row.attempts == 1 and "Connection" in row.last_error
    outbox_settings["REDIS_URL"] = good_url
    assert Relay(using=alias).run(once=True).published == 1
    assert stream_event_ids(redis_client, "orders.placed") == [event_id]


def test_prune_keeps_unpublished_and_recent(alias, outbox_settings):
    outbox_settings["PUBLISH_ON_COMMIT"] = False
    old, recent, pending = (publish_event("t", {"i": i}, using=alias) for i in range(3))
    long_ago = timezone.now() - timedelta(days=30)
    OutboxEvent.objects.using(alias).filter(pk=old).update(published_at=long_ago)
    OutboxEvent.objects.using(alias).filter(pk=recent).update(published_at=timezone.now())
    assert prune_published(using=alias) == 1
    left = set(OutboxEvent.objects.using(alias).values_list("pk", flat=True))
    assert {str(x) for x in left} == {recent, pending}


def test_stream_length_is_bounded(alias, outbox_settings, redis_client):
    outbox_settings["STREAM_MAXLEN"] = 10
    outbox_settings["PUBLISH_ON_COMMIT"] = False
    with transaction.atomic(using=alias):
        for i in range(400):
            publish_event("busy", {"i": i}, using=alias)
    Relay(using=alias).run(once=True)
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default), never below 10.
    assert 10 <= redis_client.xlen(event_stream("busy")) < 400


def test_backlog_check_fails_when_no_relay_runs(alias, outbox_settings):
    from django.core.management.base import CommandError

    outbox_settings["PUBLISH_ON_COMMIT"] = False
    publish_event("t", {}, using=alias)
    call_command("servicebus_relay", "--check-backlog", "3600", "--database", alias)
    OutboxEvent.objects.using(alias).update(created_at=timezone.now() - timedelta(hours=2))
    with pytest.raises(CommandError, match="start servicebus_relay"):
        call_command("servicebus_relay", "--check-backlog", "3600", "--database", alias)
    Relay(using=alias).run(once=True)
    call_command("servicebus_relay", "--check-backlog", "0", "--database", alias)


def test_relay_loop_retries_database_errors_then_publishes_and_stops(
    alias, outbox_settings, redis_client, monkeypatch
):
    from servicebus.outbox import relay as relay_module

    outbox_settings["PUBLISH_ON_COMMIT"] = False
    event_id = publish_event("loop", {}, using=alias)
    real = relay_module.publish_pending
    outages = [OperationalError("database away"), OperationalError("still away")]

    def flaky(**kwargs):
        if outages:
            raise outages.pop(0)
        return real(**kwargs)

    monkeypatch.setattr(relay_module, "publish_pending", flaky)
    relay = Relay(using=alias)
    result: list[relay_module.PublishResult] = []

    def run() -> None:
        try:
            result.append(relay.run())
        finally:
            connections.close_all()  # this thread's connections: the test DB is dropped later

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert wait_until(lambda: stream_event_ids(redis_client, "loop") == [event_id], 10)
    finally:
        relay.stop()
        thread.join(10)
    assert not thread.is_alive() and relay.runner.failures == 2
    assert result[0].published == 1
