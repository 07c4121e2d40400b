"""Inventory's bus methods, served for real on the in-memory bus (``servicebus_bus``),
and the events its catalogue writes (``captured_events``)."""

from __future__ import annotations

import pytest
from inventory.models import Product
from inventory.service import inventory

import servicebus

pytestmark = pytest.mark.django_db(databases=["inventory"], transaction=True)


@pytest.fixture
def served(servicebus_bus):
    Product.objects.create(sku="MUG-01", name="Mug", list_price_cents=1200, stock=5)
    servicebus_bus.serve(inventory)


def test_allocate_is_idempotent_per_order(served) -> None:
    body = {"order_id": "o-1", "items": [{"sku": "MUG-01", "qty": 2}]}
    first = servicebus.call("inventory.request", "allocate", body)
    again = servicebus.call("inventory.request", "allocate", body)
    assert (
        first
        == again
        == {
            "order_id": "o-1",
            "status": "allocated",
            "lines": [{"sku": "MUG-01", "qty": 2}],
        }
    )
    assert Product.objects.get(sku="MUG-01").stock == 3


def test_release_fences_a_late_allocate(served) -> None:
    servicebus.call("inventory.request", "release", {"order_id": "o-2"})
    with pytest.raises(servicebus.RemoteError) as caught:
        servicebus.call(
            "inventory.request",
            "allocate",
            {"order_id": "o-2", "items": [{"sku": "MUG-01", "qty": 1}]},
        )
    assert caught.value.code == "allocation_released"
    assert Product.objects.get(sku="MUG-01").stock == 5


def test_a_catalogue_change_writes_one_product_event(served, captured_events) -> None:
    servicebus.call("inventory.request", "update_product", {"sku": "MUG-01", "name": "Big mug"})
    (event,) = captured_events.of("inventory.product")
    assert (event.key, event.payload["op"], event.payload["data"]["name"]) == (
        str(Product.objects.get(sku="MUG-01").pk),
        "upsert",
        "Big mug",
    )
    # Stock moves without events.
    servicebus.call(
        "inventory.request", "allocate", {"order_id": "o-3", "items": [{"sku": "MUG-01", "qty": 1}]}
    )
    assert len(captured_events.of("inventory.product")) == 1


def test_allocate_checks_its_declared_body(served) -> None:
    with pytest.raises(servicebus.BadRequest) as caught:
        servicebus.call(
            "inventory.request",
            "allocate",
            {"order_id": "o-4", "items": [{"sku": "MUG-01\n", "qty": 1}]},
        )
    assert caught.value.details["path"] == "$.items[0].sku"
    assert Product.objects.get(sku="MUG-01").stock == 5
