"""Replication: revisions, tombstones, out-of-order and duplicate delivery, dump/load, re-sync."""

from __future__ import annotations

import io
import logging
import random
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import transaction

from servicebus.outbox.constants import event_stream
from servicebus.outbox.consumer import Consumer, consume_until_idle
from servicebus.outbox.models import OutboxEvent, Tombstone
from servicebus.outbox.replica import Outcome
from tests.integration.outbox.outbox_helpers import replica_state, source_state
from tests.integration.outbox.testapp.models import Product, ProductReplica

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True, databases="__all__")]

TOPIC = "test.product"


def replicate(alias: str, group: str = "replica") -> None:
    consume_until_idle(Consumer(group, [TOPIC], using=alias))


def make(alias: str, n: int) -> list[Product]:
    products = []
    with transaction.atomic(using=alias):
        for i in range(n):
            p = Product(sku=f"sku{i}", name=f"p{i}", price=Decimal("1.25"), stock=i)
            p.save(using=alias)
            products.append(p)
    return products


def test_revision_bumps_once_per_transaction_with_final_state(alias, outbox_settings):
    [p] = make(alias, 1)
    assert p.revision == 1
    with transaction.atomic(using=alias):
        for stock in (5, 6, 7):
            p.stock = stock
            p.save(using=alias)
    assert p.revision == 2
    events = list(OutboxEvent.objects.using(alias).order_by("created_at"))
    assert [e.payload["revision"] for e in events] == [1, 2]
    assert events[-1].payload["data"]["stock"] == 7
    p.save(using=alias)  # autocommit: its own transaction
    assert Product.objects.using(alias).get(pk=p.pk).revision == 3
    replicate(alias)
    assert replica_state(alias) == source_state(alias)


def test_savepoint_rollback_does_not_lose_the_event(alias, outbox_settings):
    [p] = make(alias, 1)
    with transaction.atomic(using=alias):
        p.stock = 1
        p.save(using=alias)
        with pytest.raises(RuntimeError), transaction.atomic(using=alias):
            p.stock = 2
            p.save(using=alias)
            raise RuntimeError
        p.stock = 3
        p.save(using=alias)
    replicate(alias)
    assert replica_state(alias) == source_state(alias)
    assert ProductReplica.objects.using(alias).get().stock == 3


def test_delete_leaves_tombstone_and_late_update_cannot_resurrect(alias, outbox_settings):
    [p] = make(alias, 1)
    key = str(p.pk)
    p.name = "renamed"
    p.save(using=alias)  # revision 2
    p.delete(using=alias)  # revision 3
    assert Tombstone.objects.using(alias).get(model="outbox_testapp.product").revision == 3
    replicate(alias)
    assert not ProductReplica.objects.using(alias).exists()
    late = ProductReplica.apply_replica_event(key, "upsert", 2, {"name": "zombie"}, using=alias)
    assert late is Outcome.STALE and not ProductReplica.objects.using(alias).exists()
    # A re-created key continues after the tombstone's revision and lives again.
    Product(pk=p.pk if p.pk else int(key), sku="again").save(using=alias)
    replicate(alias)
    assert replica_state(alias) == source_state(alias)
    assert ProductReplica.objects.using(alias).get().revision == 4


def test_duplicate_and_out_of_order_delivery_converge(alias, outbox_settings, redis_client):
    rng = random.Random(7)
    products = make(alias, 30)
    for step in range(150):
        with transaction.atomic(using=alias):
            p = rng.choice(products)
            if step % 17 == 16 and Product.objects.using(alias).filter(pk=p.pk).exists():
                p.delete(using=alias)
                products.remove(p)
                continue
            p.stock = step
            p.save(using=alias)
    entries = [fields for _, fields in redis_client.xrange(event_stream(TOPIC))]
    shuffled = entries + rng.sample(entries, len(entries) // 2)  # half of them twice
    rng.shuffle(shuffled)
    redis_client.delete(event_stream(TOPIC))
    for fields in shuffled:
        redis_client.xadd(event_stream(TOPIC), fields)
    replicate(alias)
    assert replica_state(alias) == source_state(alias)


def test_gap_is_logged_and_applied(alias, outbox_settings, caplog):
    ProductReplica.apply_replica_event("9", "upsert", 1, {"sku": "a"}, using=alias)
    with caplog.at_level(logging.WARNING, logger="servicebus.outbox.replica"):
        outcome = ProductReplica.apply_replica_event("9", "upsert", 4, {"sku": "b"}, using=alias)
    assert outcome is Outcome.GAP and "gap 1 -> 4" in caplog.text
    assert (
        ProductReplica.apply_replica_event("9", "upsert", 4, {}, using=alias) is Outcome.DUPLICATE
    )
    assert ProductReplica.objects.using(alias).get().sku == "b"


def test_dump_and_load_make_the_initial_copy(alias, outbox_settings, tmp_path):
    products = make(alias, 25)
    gone = str(products[0].pk)
    products[0].delete(using=alias)
    out = io.StringIO()
    call_command("servicebus_dump", "outbox_testapp.Product", "--database", alias, stdout=out)
    ProductReplica.apply_replica_event(gone, "upsert", 1, {"sku": "x"}, using=alias)
    dump_file = tmp_path / "products.jsonl"
    dump_file.write_text(out.getvalue())
    loaded = io.StringIO()
    call_command(
        "servicebus_load",
        "outbox_testapp.ProductReplica",
        "--file",
        str(dump_file),
        "--database",
        alias,
        stdout=loaded,
    )
    assert loaded.getvalue().strip() == "applied 25"
    assert replica_state(alias) == source_state(alias)
    # Loading again changes nothing; the stream then replays as duplicates.
    from servicebus.outbox.sync import load

    assert load(ProductReplica, io.StringIO(out.getvalue()), using=alias) == {"duplicate": 25}
    replicate(alias)
    assert replica_state(alias) == source_state(alias)


def test_resync_with_filter_to_one_replica(alias, outbox_settings):
    make(alias, 6)
    replicate(alias)
    replicate(alias, group="audit")
    ProductReplica.objects.using(alias).filter(sku__in=["sku1", "sku2"]).delete()  # "lost"
    call_command(
        "servicebus_resync",
        "outbox_testapp.Product",
        "--filter",
        "sku=sku1",
        "--replica",
        "audit",
        "--database",
        alias,
    )
    replicate(alias)  # targeted at "audit": the replica group skips it
    assert ProductReplica.objects.using(alias).count() == 4
    call_command("servicebus_resync", "outbox_testapp.Product", "--database", alias)
    replicate(alias)
    assert replica_state(alias) == source_state(alias)


def test_batch_apply_follows_the_same_rules(alias, caplog):
    first = ProductReplica.apply_replica_events(
        [
            ("1", "upsert", 1, {"sku": "a"}),
            ("1", "upsert", 3, {"sku": "c"}),
            ("1", "upsert", 2, {"sku": "b"}),
            ("2", "upsert", 1, {"sku": "x"}),
            ("2", "delete", 2, None),
            ("3", "upsert", 5, {"sku": "late"}),
        ],
        using=alias,
    )
    assert first == {"applied": 3, "stale": 3}
    rows = dict(ProductReplica.objects.using(alias).values_list("pk", "sku"))
    assert rows == {1: "c", 3: "late"}
    assert Tombstone.objects.using(alias).get(key="2").revision == 2
    with caplog.at_level(logging.WARNING, logger="servicebus.outbox.replica"):
        second = ProductReplica.apply_replica_events(
            [
                ("2", "upsert", 1, {"sku": "zombie"}),
                ("1", "upsert", 3, {"sku": "c"}),
                ("2", "upsert", 3, {"sku": "again"}),
                ("3", "upsert", 8, {"sku": "jump"}),
            ],
            using=alias,
        )
    assert second == {"stale": 1, "duplicate": 1, "applied": 1, "gap": 1}
    assert "gap 5 -> 8" in caplog.text
    rows = dict(ProductReplica.objects.using(alias).values_list("pk", "sku"))
    assert rows == {1: "c", 2: "again", 3: "jump"}
    assert not Tombstone.objects.using(alias).filter(key="2").exists()
