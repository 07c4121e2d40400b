"""Durable events on a Redis Cluster: publish, a consumer over topics on several slots,
dead letters; through redis-py's RedisCluster (REDIS_URL "...?cluster=1")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.apps import apps

if not apps.ready:  # the outbox models need the registry (root conftest chose the settings)
    django.setup()

from servicebus.outbox import Event, publish_event, registry
from servicebus.outbox.constants import event_stream
from servicebus.outbox.consumer import Consumer, consume_until_idle
from servicebus.outbox.models import InboxEvent
from servicebus.outbox.transport import cluster_url, connect, deadletter_topics
from tests.support.redis_cluster import RedisCluster

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

TOPICS = ["orders.placed", "stock.moved", "users.joined", "prices.changed"]


def test_cluster_url_option() -> None:
    assert cluster_url("redis://h:1/0?cluster=1") == ("redis://h:1/0", True)
    assert cluster_url("redis://h:1/0?cluster=no&ssl_cert_reqs=none") == (
        "redis://h:1/0?ssl_cert_reqs=none",
        False,
    )
    assert cluster_url("redis://h:1/0") == ("redis://h:1/0", False)


@pytest.fixture
def cluster_outbox(settings: Any, cluster_flushed: RedisCluster) -> dict[str, Any]:
    settings.SERVICEBUS_OUTBOX = {
        "REDIS_URL": cluster_flushed.urls[0] + "/0?cluster=1",
        "VISIBILITY_TIMEOUT": 0.2,
        "CONSUMER_BLOCK_SECONDS": 0.1,
        "MAX_DELIVERIES": 2,
        "CONSUMER_GROUP": "replica",
    }
    return settings.SERVICEBUS_OUTBOX


@pytest.fixture
def seen() -> Iterator[list[tuple[str, str]]]:
    got: list[tuple[str, str]] = []

    def handle(event: Event) -> None:
        if event.topic == "prices.changed":
            raise RuntimeError("this handler always fails")
        got.append((event.topic, event.key))

    for topic in TOPICS:
        registry.subscriber(topic)(handle)
    yield got
    for topic in TOPICS:
        registry.unregister(topic, handle)


def test_events_of_topics_on_several_slots(
    cluster_outbox: dict[str, Any], cluster_flushed: RedisCluster, seen: list[tuple[str, str]]
) -> None:
    streams = [event_stream(t) for t in TOPICS]
    assert len({cluster_flushed.master_of(s) for s in streams}) >= 2
    for topic in TOPICS:
        for key in ("a", "b", "c"):
            publish_event(topic, {"k": key}, key=key)  # published on commit, per stream
    consumer = Consumer("replica", TOPICS)
    # A blocking pass over streams of several slots returns, with what there is.
    first = consumer.poll(block=True)
    assert first.seen > 0
    for _ in range(20):  # failing entries come back after the visibility timeout
        consume_until_idle(consumer, timeout=5)
        if deadletter_topics(consumer.client) == ["prices.changed"]:
            break
        consumer.poll(block=True)
    # Every event of every slot handled (a batch with a failing event is redone event by
    # event, so the list may hold repeats; the inbox holds each event once).
    assert set(seen) == {(t, k) for t in TOPICS[:3] for k in ("a", "b", "c")}
    assert InboxEvent.objects.filter(group="replica").count() == 9
    assert deadletter_topics(connect()) == ["prices.changed"]
    assert consumer.client.xpending(event_stream("orders.placed"), "replica")["pending"] == 0
