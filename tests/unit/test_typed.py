"""Typed request bodies (servicebus.typed, ``@svc.method(body=...)``): checked before the
handler, a mismatch is BadRequest naming the field, and the types give JSON Schemas."""

from __future__ import annotations

import dataclasses
from typing import Annotated, TypedDict

import msgspec
import pytest

import servicebus
from servicebus import BadRequest, Request, Service, typed
from servicebus.testing import serve_in_background


class Item(msgspec.Struct):
    sku: Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9-]{1,8}(?!\n)$")]
    qty: Annotated[int, msgspec.Meta(ge=1)]


class Allocate(msgspec.Struct):
    order_id: str
    items: Annotated[list[Item], msgspec.Meta(min_length=1)]


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Named(TypedDict):
    name: str


def test_validate_converts_and_names_the_failing_field() -> None:
    body = typed.validate(Allocate, {"order_id": "o1", "items": [{"sku": "A1", "qty": 2}]})
    assert body == Allocate("o1", [Item("A1", 2)])
    with pytest.raises(BadRequest) as caught:
        typed.validate(Allocate, {"order_id": "o1", "items": [{"sku": "A1", "qty": "2"}]})
    assert caught.value.details["path"] == "$.items[0].qty"
    assert "$.items[0].qty" in caught.value.message and "Allocate" in caught.value.message
    for bad, path in [
        ({"order_id": "o1", "items": []}, "$.items"),
        ({"order_id": "o1", "items": [{"sku": "A1\n", "qty": 1}]}, "$.items[0].sku"),
        ({"order_id": "o1", "items": [{"sku": "A1", "qty": True}]}, "$.items[0].qty"),
        ({"order_id": "o1", "items": [{"sku": "A1", "qty": 1.0}]}, "$.items[0].qty"),
        ({"items": [{"sku": "A1", "qty": 1}]}, "$"),
        ([1, 2], "$"),
    ]:
        with pytest.raises(BadRequest) as caught:
            typed.validate(Allocate, bad)
        assert caught.value.details["path"] == path, bad


def test_dataclasses_and_typeddicts_are_body_types_too() -> None:
    assert typed.validate(Point, {"x": 1, "y": 2}) == Point(1, 2)
    assert typed.validate(Named, {"name": "n"}) == {"name": "n"}
    with pytest.raises(BadRequest) as caught:
        typed.validate(Point, {"x": 1, "y": "2"})
    assert caught.value.details["path"] == "$.y"


def test_a_type_msgspec_cannot_handle_is_refused_at_registration() -> None:
    svc = Service("typedbad")
    with pytest.raises(TypeError, match="body type"):
        svc.method(body=object())(lambda request: None)


def test_the_handler_gets_the_typed_body_and_never_runs_on_a_mismatch() -> None:
    svc = Service("typed")
    seen: list[Allocate] = []

    @svc.method(body=Allocate)
    def allocate(request: Request) -> dict:
        seen.append(request.body)
        return {"lines": len(request.body.items)}

    with serve_in_background(svc):
        body = {"order_id": "o1", "items": [{"sku": "A1", "qty": 2}]}
        assert servicebus.call("typed.request", "allocate", body) == {"lines": 1}
        with pytest.raises(BadRequest) as caught:
            servicebus.call(
                "typed.request", "allocate", {"order_id": "o1", "items": [{"sku": 5, "qty": 1}]}
            )
    assert caught.value.details["path"] == "$.items[0].sku"
    assert seen == [Allocate("o1", [Item("A1", 2)])]


def test_method_schemas_describe_bodies_and_replies() -> None:
    svc = Service("schemas")

    @svc.method(body=Allocate, returns=Point)
    def allocate(request: Request) -> Point: ...

    @svc.method()
    def ping(request: Request) -> dict: ...

    schemas = typed.method_schemas(svc)
    body = schemas["allocate"]["body"]
    assert body["$ref"] == "#/$defs/Allocate"
    item = body["$defs"]["Item"]
    assert item["properties"]["qty"] == {"type": "integer", "minimum": 1}
    assert schemas["allocate"]["returns"]["$ref"] == "#/$defs/Point"
    assert schemas["ping"] == {"body": None, "returns": {"type": "object"}}
