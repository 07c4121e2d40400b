"""The order saga against stub services: the calls it makes, its compensations, and the
order it writes (``stub_service`` from the servicebus pytest plugin)."""

from __future__ import annotations

import pytest
from orders.intake import OrderRequest, open_order
from orders.models import Order
from orders.recovery import recover
from orders.saga import OrderSaga

from servicebus import ServiceError

pytestmark = pytest.mark.django_db(databases=["default"])

CARD = "4242424242424242"
ITEMS = [{"sku": "MUG-01", "qty": 2}]
QUOTE = {
    "lines": [],
    "subtotal_cents": 2400,
    "discount_cents": 0,
    "total_cents": 2400,
    "currency": "EUR",
    "discounts": [],
}


def new_order() -> Order:
    order, created = open_order(OrderRequest(items=ITEMS, card_number=CARD), None)
    assert created
    return order


def test_a_confirmed_order_calls_each_step_once_in_order(stub_service) -> None:
    inventory = stub_service("inventory", allocate={"status": "allocated"}, finalise={})
    pricing = stub_service("pricing", quote=QUOTE, charge={"processor_ref": "ch_1"})
    order = OrderSaga(new_order(), CARD).run()
    assert order.status == Order.Status.CONFIRMED
    assert [entry["call"] for entry in order.saga_log] == [
        "inventory.allocate",
        "pricing.quote",
        "pricing.charge",
        "inventory.finalise",
    ]
    assert inventory.calls_to("allocate") == [{"order_id": order.id, "items": ITEMS}]
    (charge,) = pricing.calls_to("charge")
    assert charge == {
        "order_id": order.id,
        "amount_cents": 2400,
        "currency": "EUR",
        "card_number": CARD,
    }
    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.total_cents, stored.payment_ref) == ("confirmed", 2400, "ch_1")


def test_a_declined_card_releases_the_allocation_and_refunds_nothing(stub_service) -> None:
    inventory = stub_service("inventory", allocate={"status": "allocated"}, release={}, finalise={})
    pricing = stub_service(
        "pricing",
        quote=QUOTE,
        charge=ServiceError("card_declined", "card declined"),
        refund={},
    )
    order = OrderSaga(new_order(), CARD).run()
    assert (order.status, order.failure_code) == ("failed", "card_declined")
    assert inventory.calls_to("release") == [{"order_id": order.id}]
    assert inventory.calls_to("finalise") == []
    assert pricing.calls_to("refund") == []  # never charged: nothing to refund


def test_a_failed_finalise_refunds_then_releases(stub_service) -> None:
    inventory = stub_service(
        "inventory",
        allocate={"status": "allocated"},
        finalise=ServiceError("allocation_released", "released"),
        release={},
    )
    pricing = stub_service("pricing", quote=QUOTE, charge={"processor_ref": "ch_2"}, refund={})
    order = OrderSaga(new_order(), CARD).run()
    assert order.failure_code == "allocation_released"
    assert pricing.calls_to("refund") == [{"order_id": order.id}]
    assert inventory.calls_to("release") == [{"order_id": order.id}]
    # Newest first: the refund before the release.
    assert [e["call"] for e in order.saga_log][-2:] == ["pricing.refund", "inventory.release"]


def test_flags_and_correlation_id_reach_the_services(stub_service) -> None:
    import servicebus

    inventory = stub_service("inventory", allocate={}, finalise={})
    pricing = stub_service("pricing", quote=QUOTE, charge={"processor_ref": "ch_3"})
    with servicebus.bind("cid-unit-1", flags={"bulk_discount"}):
        OrderSaga(new_order(), CARD).run()
    (quote,) = pricing.requests_to("quote")
    assert quote.flags == frozenset({"bulk_discount"})
    assert quote.correlation_id == "cid-unit-1"
    assert inventory.requests_to("allocate")[0].caller == "orders"


def test_recovery_confirms_a_charged_order(stub_service) -> None:
    inventory = stub_service("inventory", finalise={}, release={})
    stub_service(
        "pricing",
        get_payment={
            "status": "charged",
            "amount_cents": 2400,
            "currency": "EUR",
            "processor_ref": "ch_4",
        },
        refund={},
    )
    order = recover(new_order())
    assert (order.status, order.total_cents, order.payment_ref) == ("confirmed", 2400, "ch_4")
    assert inventory.calls_to("release") == []


def test_recovery_undoes_an_uncharged_order(stub_service) -> None:
    inventory = stub_service("inventory", finalise={}, release={})
    pricing = stub_service(
        "pricing", get_payment=ServiceError("unknown_payment", "none"), refund={}
    )
    order = recover(new_order())
    assert (order.status, order.failure_code) == ("failed", "interrupted")
    assert pricing.calls_to("refund") == [{"order_id": order.id}]
    assert inventory.calls_to("release") == [{"order_id": order.id}]
