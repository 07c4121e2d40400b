"""Consumers: once per event id, XACK after commit, redelivery, dead letters, commands."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connections, transaction

from servicebus.outbox import Event, publish_event
from servicebus.outbox.constants import deadletter_stream, event_stream
from servicebus.outbox.consumer import Consumer, consume_until_idle
from servicebus.outbox.models import InboxEvent
from tests.integration.outbox.outbox_helpers import wait_until
from tests.integration.outbox.testapp.models import Product

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True, databases="__all__")]

TOPIC = "orders.placed"


def pending(redis_client, group="replica", topic=TOPIC) -> int:
    return int(redis_client.xpending(event_stream(topic), group)["pending"])


def drain(consumer: Consumer, rounds: int = 40) -> None:
    """Consume, letting failed entries pass the visibility timeout, until nothing is pending."""
    for _ in range(rounds):
        consume_until_idle(consumer, timeout=5)
        info = consumer.client.xpending(event_stream(consumer.topics[0]), consumer.group)
        if not info["pending"]:
            return
        time.sleep(consumer.settings.VISIBILITY_TIMEOUT + 0.05)
    raise AssertionError("entries still pending after bounded rounds")


def test_duplicate_entries_run_the_handler_once(alias, outbox_settings, redis_client, handlers):
    seen: list[str] = []
    handlers.append((TOPIC, lambda e: seen.append(e.key)))
    with transaction.atomic(using=alias):
        for key in "abc":
            publish_event(TOPIC, {"k": key}, key=key, using=alias)
    # The relay may publish a row twice (it died before marking it): re-add every entry.
    for _, fields in redis_client.xrange(event_stream(TOPIC)):
        redis_client.xadd(event_stream(TOPIC), fields)
    consumer = Consumer("replica", [TOPIC], using=alias)
    result = consume_until_idle(consumer)
    assert sorted(seen) == ["a", "b", "c"]
    assert (result.handled, result.duplicates) == (3, 3)
    assert InboxEvent.objects.using(alias).filter(group="replica").count() == 3
    assert pending(redis_client) == 0
    # Another group gets its own copy of every event.
    other = consume_until_idle(Consumer("audit", [TOPIC], using=alias))
    assert other.handled == 3 and len(seen) == 6


def test_failed_handler_rolls_back_and_is_redelivered(
    alias, outbox_settings, redis_client, handlers
):
    calls: list[int] = []

    def flaky(event: Event) -> None:
        calls.append(1)
        Product(sku="written-by-handler").save(using=event.database)
        if len(calls) == 1:
            raise RuntimeError("transient")

    handlers.append((TOPIC, flaky))
    publish_event(TOPIC, {}, key="k", using=alias)
    consumer = Consumer("replica", [TOPIC], using=alias)
    first = consume_until_idle(consumer)
    assert first.failed == 1 and pending(redis_client) == 1  # not acknowledged
    assert not Product.objects.using(alias).exists()  # its writes rolled back
    drain(consumer)
    assert len(calls) == 2 and Product.objects.using(alias).count() == 1


def test_crash_between_commit_and_ack_is_not_reprocessed(
    alias, outbox_settings, redis_client, handlers, monkeypatch
):
    seen: list[str] = []
    handlers.append((TOPIC, lambda e: seen.append(e.id)))
    publish_event(TOPIC, {}, using=alias)
    consumer = Consumer("replica", [TOPIC], using=alias)
    monkeypatch.setattr(consumer, "_ack", lambda entries: None)  # "dies" before XACK
    consume_until_idle(consumer)
    monkeypatch.undo()
    restarted = Consumer("replica", [TOPIC], using=alias, name="restarted")
    time.sleep(outbox_settings["VISIBILITY_TIMEOUT"] + 0.05)
    result = consume_until_idle(restarted)
    assert result.duplicates == 1 and len(seen) == 1 and pending(redis_client) == 0


def test_poison_message_is_dead_lettered_while_others_flow(
    alias, outbox_settings, redis_client, handlers
):
    handled: list[str] = []

    def handler(event: Event) -> None:
        if event.key == "poison":
            raise ValueError("cannot handle this one")
        handled.append(event.key)

    handlers.append((TOPIC, handler))
    publish_event(TOPIC, {}, key="poison", using=alias)
    for i in range(5):
        publish_event(TOPIC, {}, key=f"ok{i}", using=alias)
    consumer = Consumer("replica", [TOPIC], using=alias)
    consume_until_idle(consumer)
    assert handled == [f"ok{i}" for i in range(5)]  # later messages did not wait
    drain(consumer)
    [(_, dead)] = redis_client.xrange(deadletter_stream(TOPIC))
    assert "ValueError: cannot handle this one" in dead["error"]
    assert dead["orig.key"] == "poison" and dead["group"] == "replica"
    assert pending(redis_client) == 0
    publish_event(TOPIC, {}, key="after", using=alias)
    consume_until_idle(consumer)
    assert handled[-1] == "after"


@pytest.mark.parametrize(
    "fields",
    [
        {"garbage": "yes"},
        {"v": "1", "id": "not-a-uuid", "topic": TOPIC, "payload": "{}"},
        {"v": "1", "id": "2f1e6bb4-3f7e-4a43-9c43-5a1a0f3f3c11", "topic": TOPIC, "payload": "{"},
        {
            "v": "1",
            "id": "2f1e6bb4-3f7e-4a43-9c43-5a1a0f3f3c11",
            "topic": TOPIC,
            "payload": b"\xff\xfe",
        },
    ],
    ids=["no-fields", "bad-id", "bad-json", "not-utf8"],
)
def test_unparseable_entries_are_dead_lettered(
    alias, outbox_settings, redis_client, handlers, fields
):
    handled: list[str] = []
    handlers.append((TOPIC, lambda e: handled.append(e.key)))
    consumer = Consumer("replica", [TOPIC], using=alias)
    consumer.ensure_groups()
    redis_client.xadd(event_stream(TOPIC), fields)
    publish_event(TOPIC, {}, key="fine", using=alias)
    result = consume_until_idle(consumer)
    assert result.dead_lettered == 1 and handled == ["fine"]
    [(_, dead)] = redis_client.xrange(deadletter_stream(TOPIC))
    assert dead["error"] and pending(redis_client) == 0


def test_targeted_events_are_skipped_by_other_groups(alias, outbox_settings, handlers):
    seen: list[str] = []
    handlers.append((TOPIC, lambda e: seen.append(e.key)))
    publish_event(TOPIC, {}, key="only-audit", headers={"target_group": "audit"}, using=alias)
    assert consume_until_idle(Consumer("replica", [TOPIC], using=alias)).skipped == 1
    assert seen == []
    consume_until_idle(Consumer("audit", [TOPIC], using=alias))
    assert seen == ["only-audit"]


def test_deadletters_command_lists_retries_and_purges(
    alias, outbox_settings, redis_client, handlers, capsys
):
    broken = {"on": True}

    def handler(event: Event) -> None:
        if broken["on"]:
            raise RuntimeError(f"bug for {event.key}")

    handlers.append((TOPIC, handler))
    for key in ("a", "b"):
        publish_event(TOPIC, {}, key=key, using=alias)
    consumer = Consumer("replica", [TOPIC], using=alias)
    drain(consumer)
    capsys.readouterr()
    call_command("servicebus_deadletters", "list", "--topic", TOPIC)
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(d["orig.key"] for d in listed) == ["a", "b"]
    first = next(d for d in listed if d["orig.key"] == "a")
    broken["on"] = False  # the bug is fixed: replay one, purge the other
    call_command("servicebus_deadletters", "retry", "--id", first["dead_id"])
    assert consume_until_idle(consumer).handled == 1
    call_command("servicebus_deadletters", "purge")
    assert redis_client.xlen(deadletter_stream(TOPIC)) == 0
    assert InboxEvent.objects.using(alias).count() == 1


def test_graceful_stop_leaves_the_group_only_without_pending(
    alias, outbox_settings, redis_client, handlers
):
    def handler(event: Event) -> None:
        if event.key == "bad":
            raise RuntimeError("stays pending")

    handlers.append((TOPIC, handler))
    publish_event(TOPIC, {}, key="good", using=alias)
    Consumer("replica", [TOPIC], using=alias, name="clean").run(once=True)
    assert redis_client.xinfo_consumers(event_stream(TOPIC), "replica") == []
    publish_event(TOPIC, {}, key="bad", using=alias)
    Consumer("replica", [TOPIC], using=alias, name="holder").run(once=True)
    [holder] = redis_client.xinfo_consumers(event_stream(TOPIC), "replica")
    assert holder["name"] == "holder" and holder["pending"] == 1


def test_relay_dying_after_xadd_republishes_and_consumer_dedupes(
    alias, outbox_settings, redis_client, handlers, monkeypatch
):
    from servicebus.outbox import relay

    seen: list[str] = []
    handlers.append((TOPIC, lambda e: seen.append(e.id)))
    outbox_settings["PUBLISH_ON_COMMIT"] = False
    outbox_settings["RELAY_CLAIM_TIMEOUT"] = 0.2  # SQLite: the dead relay's claim lapses
    event_id = publish_event(TOPIC, {}, using=alias)
    real_xadd = relay.xadd_many

    def xadd_then_die(*args, **kwargs):
        real_xadd(*args, **kwargs)
        raise KeyboardInterrupt("killed after XADD, before marking the row")

    monkeypatch.setattr(relay, "xadd_many", xadd_then_die)
    with pytest.raises(KeyboardInterrupt):
        relay.Relay(using=alias).run(once=True)
    monkeypatch.undo()
    time.sleep(0.25)
    relay.Relay(using=alias).run(once=True)  # the row was never marked: published again
    assert [f["id"] for _, f in redis_client.xrange(event_stream(TOPIC))] == [event_id] * 2
    result = consume_until_idle(Consumer("replica", [TOPIC], using=alias))
    assert (result.handled, result.duplicates) == (1, 1) and seen == [event_id]


def test_consumer_loop_retries_redis_errors_then_handles_and_stops(
    alias, outbox_settings, redis_client, handlers, monkeypatch
):
    import redis as redis_lib

    seen: list[str] = []
    handlers.append((TOPIC, lambda e: seen.append(e.key)))
    publish_event(TOPIC, {}, key="after-outage", using=alias)
    consumer = Consumer("replica", [TOPIC], using=alias)
    real = consumer.poll
    outages = [redis_lib.ConnectionError("redis away"), redis_lib.ConnectionError("still")]

    def flaky(block: bool = True):
        if outages:
            raise outages.pop(0)
        return real(block=block)

    monkeypatch.setattr(consumer, "poll", flaky)

    def run() -> None:
        try:
            consumer.run()
        finally:
            connections.close_all()  # this thread's connections: the test DB is dropped later

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert wait_until(lambda: seen == ["after-outage"], 10)
    finally:
        consumer.stop()
        thread.join(10)
    assert not thread.is_alive() and consumer.runner.failures == 2
    assert pending(redis_client) == 0
