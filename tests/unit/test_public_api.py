"""The public API is a contract: what servicebus exports, and the error tree's shape."""

from __future__ import annotations

import pickle
import subprocess
import sys

import servicebus
from servicebus import errors
from servicebus.errors import rebuild_error

EXPECTED = [
    "Backpressure",
    "BadRequest",
    "BusMisconfigured",
    "BusUnavailable",
    "CallTimeout",
    "Event",
    "MethodNotFound",
    "PayloadTooLarge",
    "RemoteError",
    "Request",
    "Service",
    "ServiceBusError",
    "ServiceError",
    "acall",
    "bind",
    "call",
    "current_correlation_id",
    "current_request",
    "publish_event",
    "subscriber",
]


def test_all_is_sorted_and_exact() -> None:
    assert servicebus.__all__ == sorted(servicebus.__all__)
    assert servicebus.__all__ == EXPECTED
    for name in servicebus.__all__:
        assert getattr(servicebus, name) is not None


def test_every_error_has_one_root() -> None:
    for name in (
        "CallTimeout",
        "Backpressure",
        "BusUnavailable",
        "BusMisconfigured",
        "BadRequest",
        "PayloadTooLarge",
        "RemoteError",
        "MethodNotFound",
        "ServiceError",
    ):
        assert issubclass(getattr(servicebus, name), servicebus.ServiceBusError), name
    assert issubclass(servicebus.MethodNotFound, servicebus.RemoteError)
    assert issubclass(servicebus.PayloadTooLarge, servicebus.BadRequest)
    assert issubclass(servicebus.BusMisconfigured, servicebus.BusUnavailable)


def test_import_servicebus_leaves_out_the_orm_and_the_outbox() -> None:
    # A fresh interpreter: this test process has imported everything already.
    code = (
        "import sys, servicebus\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('django.db', 'servicebus.outbox')))\n"
        "print(','.join(bad))\n"
        "assert servicebus.publish_event and servicebus.subscriber and servicebus.Event\n"
        "print('outbox' if 'servicebus.outbox' in sys.modules else '-')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out == ["", "outbox"]


def test_local_errors_say_what_to_do() -> None:
    for cls in (servicebus.CallTimeout, servicebus.Backpressure, servicebus.BusUnavailable):
        text = str(cls("boom"))
        assert text.startswith("boom (") and len(text) > 30, text


def test_rebuild_only_from_allow_list() -> None:
    err = rebuild_error({"code": "method_not_found", "message": "no x", "details": None})
    assert type(err) is servicebus.MethodNotFound
    err = rebuild_error({"code": "out_of_stock", "message": "m", "details": {"a": 1}})
    assert type(err) is servicebus.RemoteError and err.code == "out_of_stock"
    # A code naming some other class never instantiates it.
    err = rebuild_error({"code": "SystemExit", "message": "x"})
    assert type(err) is servicebus.RemoteError and err.code == "SystemExit"
    assert type(rebuild_error("garbage")) is servicebus.RemoteError
    assert rebuild_error({"message": 3}).code == "internal"


def test_remote_errors_pickle() -> None:
    err = servicebus.RemoteError("out_of_stock", "m", {"a": 1})
    again = pickle.loads(pickle.dumps(err))
    assert (again.code, again.message, again.details) == ("out_of_stock", "m", {"a": 1})


def test_service_error_carries_code() -> None:
    err = servicebus.ServiceError("card_declined", "declined", {"last4": "0002"})
    assert err.to_wire() == {
        "code": "card_declined",
        "message": "declined",
        "details": {"last4": "0002"},
    }
    assert errors.ServiceError is servicebus.ServiceError
