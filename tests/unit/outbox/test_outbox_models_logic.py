"""Model-side logic that needs no queries: payload shape, field conversion, dump parsing."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from servicebus.outbox.errors import DumpFormatError, ReplicationConfigError
from servicebus.outbox.replica import judge
from servicebus.outbox.replication import get_model
from servicebus.outbox.source import replication_topic
from servicebus.outbox.sync import read_dump
from tests.integration.outbox.testapp.models import Product, ProductReplica


def test_source_payload_carries_op_revision_and_data():
    p = Product(pk=7, sku="s", name="n", price=Decimal("2.50"), stock=3)
    p.revision = 4
    payload = p.replication_payload()
    assert payload["op"] == "upsert" and payload["revision"] == 4
    assert payload["data"] == {
        "id": 7,
        "sku": "s",
        "name": "n",
        "price": Decimal("2.50"),
        "stock": 3,
    }
    assert p.replication_key() == "7"


def test_replica_converts_wire_values_and_ignores_unknown_fields():
    values = ProductReplica.from_replica(
        {"id": 7, "sku": "s", "price": "2.50", "stock": "3", "colour": "red", "revision": 99}
    )
    assert values == {"sku": "s", "price": Decimal("2.50"), "stock": 3}


def test_topic_comes_from_the_replication_class():
    assert replication_topic(Product) == replication_topic(ProductReplica) == "test.product"

    class NoTopic:
        pass

    with pytest.raises(ReplicationConfigError, match=r"Replication\.topic"):
        replication_topic(NoTopic)  # type: ignore[arg-type]


def test_get_model_checks_the_kind():
    assert get_model("outbox_testapp.Product", "source") is Product
    with pytest.raises(ReplicationConfigError, match="not a replica model"):
        get_model("outbox_testapp.Product", "replica")
    with pytest.raises(ReplicationConfigError, match=r"app_label\.ModelName"):
        get_model("nope", "source")


@pytest.mark.parametrize(
    "text", ["", "not json\n", '{"model": "x"}\n', '{"servicebus_dump": 1}\n{oops\n']
)
def test_bad_dumps_raise_a_named_error(text):
    with pytest.raises(DumpFormatError) as info:
        _header, rows = read_dump(io.StringIO(text))
        list(rows)
    assert "servicebus_dump" in str(info.value)


@pytest.mark.parametrize(
    ("revision", "current", "seen", "outcome"),
    [
        (3, 3, {3}, "duplicate"),
        (2, 3, {2}, "stale"),
        (1, 0, {1}, "applied"),  # a new key starts anywhere: no gap from nothing
        (4, 3, {4}, "applied"),
        (6, 3, {6}, "gap"),
        (6, 3, {4, 5, 6}, "applied"),  # the revisions between came in the same batch
        (6, 3, {5, 6}, "gap"),
    ],
)
def test_one_revision_rule_for_single_events_and_batches(revision, current, seen, outcome):
    assert judge(revision, current, seen).value == outcome
