"""servicebus_diff: a replica changed by hand is repaired from the source's (key, revision)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from servicebus.outbox.constants import RESYNC_TOPIC
from servicebus.outbox.consumer import Consumer, consume_until_idle
from servicebus.outbox.models import OutboxEvent
from servicebus.outbox.relay import Relay
from tests.integration.outbox.outbox_helpers import replica_state, source_state
from tests.integration.outbox.testapp.models import Product, ProductReplica

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True, databases="__all__")]


def dump_keys(alias: str, tmp_path):
    """The source's (key, revision) list, as `servicebus_dump --keys-only` writes it."""
    keys = tmp_path / "keys.jsonl"
    with keys.open("w") as fh:
        call_command(
            "servicebus_dump",
            "outbox_testapp.Product",
            "--keys-only",
            "--database",
            alias,
            stdout=fh,
            stderr=io.StringIO(),
        )
    return keys


def diff_once(alias: str, tmp_path) -> dict:
    """Source dumps (key, revision); the replica diffs; the source serves the re-sync."""
    keys = dump_keys(alias, tmp_path)
    out = io.StringIO()
    call_command(
        "servicebus_diff",
        "outbox_testapp.ProductReplica",
        "--file",
        str(keys),
        "--group",
        "replica",
        "--database",
        alias,
        stdout=out,
    )
    consume_until_idle(Consumer("source", [RESYNC_TOPIC], using=alias))  # the source's side
    Relay(using=alias).run(once=True)
    consume_until_idle(Consumer("replica", ["test.product"], using=alias))
    return json.loads(out.getvalue())


def test_diff_repairs_a_replica_changed_by_hand(alias, outbox_settings, tmp_path):
    products = []
    for i in range(10):
        p = Product(sku=f"s{i}", name=f"n{i}")
        p.save(using=alias)
        products.append(p)
    consume_until_idle(Consumer("replica", ["test.product"], using=alias))
    assert replica_state(alias) == source_state(alias)

    replicas = ProductReplica.objects.using(alias)
    replicas.filter(pk=products[1].pk).delete()  # row lost at the replica
    replicas.filter(pk=products[2].pk).update(revision=0, name="behind")
    replicas.filter(pk=products[3].pk).update(revision=99, name="ahead")
    ProductReplica(pk=999_999, sku="junk", revision=3).save(using=alias)
    # Changes at the source whose events never arrive (outbox rows lost).
    outbox_settings["PUBLISH_ON_COMMIT"] = False
    products[4].delete(using=alias)  # deleted at the source
    products[5].name = "changed"
    products[5].save(using=alias)
    OutboxEvent.objects.using(alias).filter(published_at__isnull=True).delete()
    outbox_settings["PUBLISH_ON_COMMIT"] = True
    assert replica_state(alias) != source_state(alias)

    report = diff_once(alias, tmp_path)
    assert report["in_sync"] is False
    assert report["deleted_locally"] == 2  # the source's delete, and the junk row
    assert replica_state(alias) == source_state(alias)
    assert diff_once(alias, tmp_path)["in_sync"] is True


def test_diff_dry_run_changes_nothing(alias, outbox_settings, tmp_path):
    Product(sku="a").save(using=alias)
    keys = dump_keys(alias, tmp_path)
    out = io.StringIO()
    call_command(
        "servicebus_diff",
        "outbox_testapp.ProductReplica",
        "--file",
        str(keys),
        "--dry-run",
        "--database",
        alias,
        stdout=out,
    )
    assert json.loads(out.getvalue())["resync_requested"] == 1
    assert not OutboxEvent.objects.using(alias).filter(topic=RESYNC_TOPIC).exists()


def test_commands_report_configuration_errors_without_traceback(alias, outbox_settings):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=r"app_label\.ModelName"):
        call_command("servicebus_dump", "nope")
    with pytest.raises(CommandError, match="not a replica model"):
        call_command("servicebus_load", "outbox_testapp.Product")
    with pytest.raises(CommandError, match="servicebus_dump"):
        call_command("servicebus_diff", "outbox_testapp.ProductReplica", "--file", "/dev/null")
    outbox_settings["CONSUMER_GROUP"] = ""
    from django.test import override_settings

    with (
        override_settings(SERVICEBUS={"SERVICE_NAME": ""}),
        pytest.raises(CommandError, match="--group"),
    ):
        call_command("servicebus_consume", "--once")
