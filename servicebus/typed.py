"""Typed request bodies: ``@svc.method(body=SomeType)`` checks the body before the handler.

    class Allocate(msgspec.Struct):
        order_id: str
        items: Annotated[list[Item], msgspec.Meta(min_length=1)]

    @inventory.method(body=Allocate)
    def allocate(request: Request) -> dict:
        request.body.items[0].sku          # an Allocate, already checked

A body type is anything msgspec converts to: a ``msgspec.Struct``, a dataclass, a
``TypedDict``, a ``list[...]`` of them, with ``Annotated[..., msgspec.Meta(...)]``
constraints. The body is converted strictly (no "1" for 1, no 1.0 for 1); a mismatch
is ``BadRequest`` whose message and ``details["path"]`` name the field
(``$.items[0].qty``). The same types give JSON Schemas (``schema``, ``method_schemas``)
for ``_info`` and docs.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from typing import Any

from servicebus.errors import BadRequest

__all__ = ["check_type", "method_schemas", "return_type", "schema", "type_name", "validate"]

_PATH = re.compile(r" - at `(\$[^`]*)`$")


def _msgspec() -> Any:
    try:
        import msgspec
    except ImportError as exc:  # pragma: no cover - msgspec is a dependency
        raise ImportError("typed bodies need msgspec (pip install msgspec)") from exc
    return msgspec


def type_name(tp: Any) -> str:
    """A readable name for a declared type."""
    return getattr(tp, "__name__", None) or repr(tp)


def check_type(tp: Any) -> Any:
    """``tp`` if msgspec can convert to it and describe it; TypeError at registration if not."""
    msgspec = _msgspec()
    try:
        msgspec.json.schema(tp)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{type_name(tp)!r} cannot be a body type: {exc}") from None
    return tp


def validate(tp: Any, body: Any) -> Any:
    """``body`` converted to ``tp`` (strictly), or BadRequest naming the field that differs."""
    msgspec = _msgspec()
    try:
        return msgspec.convert(body, type=tp, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH.search(text)
        path = match.group(1) if match else "$"
        problem = _PATH.sub("", text)
        raise BadRequest(
            f"body does not match {type_name(tp)}: {path}: {problem}",
            details={"path": path, "type": type_name(tp), "problem": problem},
        ) from None


def schema(tp: Any) -> dict[str, Any] | None:
    """The JSON Schema of a declared type (None for None)."""
    if tp is None:
        return None
    result: dict[str, Any] = _msgspec().json.schema(tp)
    return result


def return_type(fn: Callable[..., Any]) -> Any:
    """The handler's return annotation when it resolves to a type with a schema, else None."""
    try:
        tp = typing.get_type_hints(fn, include_extras=True).get("return")
    except Exception:  # unresolvable forward references: no schema, no harm
        return None
    if tp is None or tp is Any or tp is type(None):
        return None
    try:
        return check_type(tp)
    except (TypeError, ImportError):
        return None


def method_schemas(service: Any) -> dict[str, dict[str, Any]]:
    """``{method: {"body": schema or None, "returns": schema or None}}`` for a Service."""
    bodies: dict[str, Any] = getattr(service, "body_types", {})
    returns: dict[str, Any] = getattr(service, "return_types", {})
    return {
        method: {"body": schema(bodies.get(method)), "returns": schema(returns.get(method))}
        for method in service.methods
    }
