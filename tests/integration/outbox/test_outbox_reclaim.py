"""Reclaimed entries past MAX_DELIVERIES: the inbox first, then one last chance, then dead."""

from __future__ import annotations

import time

import pytest

from servicebus.outbox import Event, publish_event
from servicebus.outbox.constants import deadletter_stream, event_stream
from servicebus.outbox.consumer import Consumer, consume_until_idle
from servicebus.outbox.models import InboxEvent

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True, databases="__all__")]

TOPIC = "orders.placed"


def deliver_without_handling(redis_client, consumer: Consumer, times: int) -> str:
    """Read the one new entry as a consumer that dies at once, ``times`` deliveries in all.

    This is what repeated consumer crashes (or a database outage) leave behind: an entry
    whose delivery count grew while no handler ever ran for it.
    """
    consumer.ensure_groups()
    stream = event_stream(TOPIC)
    [(_, [(sid, _)])] = redis_client.xreadgroup(consumer.group, "ghost", {stream: ">"}, count=1)
    redis_client.xclaim(stream, consumer.group, "ghost", 0, [sid], retrycount=times)
    [row] = redis_client.xpending_range(stream, consumer.group, "-", "+", 10)
    assert row["times_delivered"] == times
    return str(sid)


def dead_letters(redis_client) -> list[dict[str, str]]:
    return [fields for _, fields in redis_client.xrange(deadletter_stream(TOPIC))]


def pending(redis_client, group: str = "replica") -> int:
    return int(redis_client.xpending(event_stream(TOPIC), group)["pending"])


def test_entry_already_applied_is_acked_not_dead_lettered(
    alias, outbox_settings, redis_client, handlers, monkeypatch
):
    seen: list[str] = []
    handlers.append((TOPIC, lambda e: seen.append(e.id)))
    publish_event(TOPIC, {}, key="applied", using=alias)
    first = Consumer("replica", [TOPIC], using=alias, name="first")
    monkeypatch.setattr(first, "_ack", lambda entries: None)  # commits, then "dies" before XACK
    assert consume_until_idle(first).handled == 1
    monkeypatch.undo()
    # It kept dying before XACK: the entry was delivered past the limit.
    sid = redis_client.xpending_range(event_stream(TOPIC), "replica", "-", "+", 1)[0]["message_id"]
    limit = outbox_settings["MAX_DELIVERIES"]
    redis_client.xclaim(event_stream(TOPIC), "replica", "first", 0, [sid], retrycount=limit + 2)
    time.sleep(outbox_settings["VISIBILITY_TIMEOUT"] + 0.05)
    result = consume_until_idle(Consumer("replica", [TOPIC], using=alias, name="second"))
    assert (result.duplicates, result.dead_lettered) == (1, 0)
    assert dead_letters(redis_client) == [] and pending(redis_client) == 0
    assert len(seen) == 1


def test_entry_whose_handler_never_ran_gets_its_chance(
    alias, outbox_settings, redis_client, handlers
):
    seen: list[str] = []
    handlers.append((TOPIC, lambda e: seen.append(e.key)))
    consumer = Consumer("replica", [TOPIC], using=alias)
    publish_event(TOPIC, {}, key="never-ran", using=alias)
    deliver_without_handling(redis_client, consumer, outbox_settings["MAX_DELIVERIES"])
    time.sleep(outbox_settings["VISIBILITY_TIMEOUT"] + 0.05)
    result = consume_until_idle(consumer)  # the reclaim makes it delivery MAX_DELIVERIES + 1
    assert (result.handled, result.dead_lettered) == (1, 0)
    assert seen == ["never-ran"] and dead_letters(redis_client) == []
    assert pending(redis_client) == 0
    assert InboxEvent.objects.using(alias).filter(group="replica").count() == 1


def test_last_chance_runs_alone_so_a_failing_neighbour_cannot_sink_it(
    alias, outbox_settings, redis_client, handlers
):
    seen: list[str] = []

    def handler(event: Event) -> None:
        if event.key == "bad":
            raise ValueError("bad event")
        seen.append(event.key)

    handlers.append((TOPIC, handler))
    consumer = Consumer("replica", [TOPIC], using=alias)
    publish_event(TOPIC, {}, key="late", using=alias)
    deliver_without_handling(redis_client, consumer, outbox_settings["MAX_DELIVERIES"])
    publish_event(TOPIC, {}, key="bad", using=alias)
    time.sleep(outbox_settings["VISIBILITY_TIMEOUT"] + 0.05)
    consume_until_idle(consumer)
    assert seen == ["late"]


def test_last_chance_that_kills_the_consumer_is_dead_lettered_next_time(
    alias, outbox_settings, redis_client, handlers
):
    calls: list[str] = []

    def deadly(event: Event) -> None:
        calls.append(event.key)
        raise SystemExit("the handler takes the process down")

    handlers.append((TOPIC, deadly))
    consumer = Consumer("replica", [TOPIC], using=alias)
    publish_event(TOPIC, {}, key="deadly", using=alias)
    deliver_without_handling(redis_client, consumer, outbox_settings["MAX_DELIVERIES"])
    time.sleep(outbox_settings["VISIBILITY_TIMEOUT"] + 0.05)
    with pytest.raises(SystemExit):
        consume_until_idle(consumer)
    time.sleep(outbox_settings["VISIBILITY_TIMEOUT"] + 0.05)
    restarted = Consumer("replica", [TOPIC], using=alias, name="restarted")
    result = consume_until_idle(restarted)
    assert result.dead_lettered == 1 and calls == ["deadly"]  # not run a second time
    [dead] = dead_letters(redis_client)
    assert "last chance" in dead["error"] and dead["orig.key"] == "deadly"
    assert pending(redis_client) == 0
