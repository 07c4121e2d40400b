"""The orders HTTP API as a hostile client sees it: every client error is the API's JSON
error (never Django's HTML page, never a 500), patterns match exactly, and a rejected
order leaves no row behind. Issue 11, item 5."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from tests.e2e.stack import CARD_OK, Response, Stack

pytestmark = pytest.mark.e2e

JSON = {"Content-Type": "application/json"}
VALID = {"items": [{"sku": "MUG-01", "qty": 1}], "card_number": CARD_OK}


def order_rows(stack: Stack) -> int:
    return stack.query("orders", "SELECT count(*) FROM orders_order")[0][0]


def charges(stack: Stack) -> int:
    return sum("processor charge" in line for line in stack.lines("pricing"))


def assert_error(resp: Response, status: int, code: str) -> None:
    assert resp.status == status, (resp.status, resp.body)
    assert resp.headers.get_content_type() == "application/json", resp.body
    assert isinstance(resp.body, dict), resp.body
    assert resp.body["error"]["code"] == code, resp.body
    assert isinstance(resp.body["error"]["message"], str) and resp.body["error"]["message"]


def post(stack: Stack, body: bytes, **headers: str) -> Response:
    return stack.raw("POST", "/orders", body, {**JSON, **headers})


def test_oversized_body_is_413_json(stack: Stack) -> None:
    rows = order_rows(stack)
    big = json.dumps({**VALID, "pad": "x" * 300_000}).encode()
    assert_error(post(stack, big), 413, "payload_too_large")
    # Past Django's own limit (2.5 MB) too: still ours, not its HTML 400 page.
    huge = json.dumps({**VALID, "pad": "x" * 3_000_000}).encode()
    assert_error(post(stack, huge), 413, "payload_too_large")
    assert order_rows(stack) == rows


@pytest.mark.parametrize("depth", [50, 3000, 10_000])
def test_deeply_nested_json_is_400_json(stack: Stack, depth: int) -> None:
    rows = order_rows(stack)
    nested = b"[" * depth + b"]" * depth
    assert_error(post(stack, nested), 400, "invalid_request")
    inside = b'{"items": [' + b"[" * depth + b"]" * depth + b'], "card_number": "4242424242424242"}'
    assert_error(post(stack, inside), 400, "invalid_request")
    deep_sku = (
        b'{"items": [{"sku": ' + b"{" + b'"a":{' * depth + b"}" * depth + b'}, "qty": 1}], '
        b'"card_number": "4242424242424242"}'
    )
    assert_error(post(stack, deep_sku), 400, "invalid_request")
    assert order_rows(stack) == rows


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"{'items': []}", b"\xff\xfe", b"null", b"[]", b'"x"', b"NaN", b"1e999999"],
)
def test_malformed_json_is_400_json(stack: Stack, body: bytes) -> None:
    assert_error(post(stack, body), 400, "invalid_request")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_wrong_content_type_is_415_json(stack: Stack, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps(VALID).encode()
    if content_type and content_type.startswith("multipart/"):
        # Well-formed: daphne's HTTP parser (Twisted) answers a malformed multipart body
        # with a bare 400 before Django runs (see docs/services.md).
        body = b'--x\r\nContent-Disposition: form-data; name="o"\r\n\r\n' + body + b"\r\n--x--\r\n"
    resp = stack.raw("POST", "/orders", body, headers)
    assert_error(resp, 415, "unsupported_media_type")


def test_json_with_charset_is_accepted(stack: Stack) -> None:
    utf8 = {"Content-Type": "application/json; charset=utf-8"}
    resp = post(stack, json.dumps(VALID).encode(), **utf8)
    assert resp.status == 201, resp.body


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sku", "MUG-01\n"),  # `$` matches before a trailing newline: an order row, failed
        ("sku", "MUG-01\r"),
        ("sku", "\u041cUG-01"),  # a Cyrillic capital EM
        ("card", "4242424242424242\n"),
        ("card", "\u0664\u0662" * 8),  # Arabic-Indic digits: \d matches them
        ("card", "\uff14\uff12" * 8),  # fullwidth digits
    ],
)
def test_exact_ascii_patterns_leave_no_row_and_no_charge(
    stack: Stack, field: str, value: str
) -> None:
    rows, charged = order_rows(stack), charges(stack)
    body: dict[str, Any] = {"items": [{"sku": "MUG-01", "qty": 1}], "card_number": CARD_OK}
    if field == "sku":
        body["items"][0]["sku"] = value
    else:
        body["card_number"] = value
    resp = post(stack, json.dumps(body).encode())
    assert_error(resp, 400, "invalid_request")
    assert "order" not in resp.body
    assert order_rows(stack) == rows
    assert charges(stack) == charged


def test_unknown_path_and_wrong_method_are_json(stack: Stack) -> None:
    assert_error(stack.raw("GET", "/nope", None), 404, "not_found")
    assert_error(stack.raw("GET", "/orders", None), 405, "method_not_allowed")
    resp = stack.raw("DELETE", "/orders/ord_x", None)
    assert_error(resp, 405, "method_not_allowed")
    assert resp.headers["Allow"] == "GET"
    assert_error(stack.raw("POST", "/health", b"{}", JSON), 405, "method_not_allowed")


def test_bad_idempotency_key_is_400_json(stack: Stack) -> None:
    rows = order_rows(stack)
    resp = post(stack, json.dumps(VALID).encode(), **{"Idempotency-Key": "x" * 256})
    assert_error(resp, 400, "invalid_request")
    assert order_rows(stack) == rows


# --- a bounded fuzz: random and mutated bodies, never a 500, always the JSON shape --------


STRINGS = [
    "",
    "MUG-01",
    "MUG-01\n",
    "x" * 40,
    "\u0664\u0662",
    "\u0000",
    "\ud800",
    CARD_OK,
    "\u00e9",
]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "float", "str", "bool", "null"]
    if depth < 4:
        kinds += ["list", "dict"]
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.choice([0, 1, -1, 7, 1000, 1001, 2**63, -(2**70), rng.randint(-50, 5000)])
    if kind == "float":
        return rng.choice([0.5, 1.0, -0.0, 1e308, 3.0])
    if kind == "str":
        return rng.choice(
            [
                "",
                "MUG-01",
                "MUG-01\n",
                "x" * 40,
                "٤٢",
                "\u0000",
                "\ud800",
                "4242424242424242",
                "\u00e9",
            ]
        )
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["items", "sku", "qty", "card_number", "x", ""]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def mutate(rng: random.Random) -> Any:
    body: dict[str, Any] = json.loads(json.dumps(VALID))
    target = rng.choice(["items", "item", "sku", "qty", "card", "extra", "drop"])
    if target == "items":
        body["items"] = random_json(rng)
    elif target == "item":
        body["items"] = [random_json(rng) for _ in range(rng.randint(1, 3))]
    elif target == "sku":
        body["items"][0]["sku"] = random_json(rng)
    elif target == "qty":
        body["items"][0]["qty"] = random_json(rng)
    elif target == "card":
        body["card_number"] = random_json(rng)
    elif target == "extra":
        body[rng.choice(["items", "card_number", "note"])] = random_json(rng)
    else:
        del body[rng.choice(["items", "card_number"])]
    return body


def reference_accepts(raw: bytes) -> bool:
    """A strict reference validator: what may become an order (exact ASCII patterns)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    items, card = data.get("items"), data.get("card_number")
    if not isinstance(items, list) or not 1 <= len(items) <= 50:
        return False
    for item in items:
        if not isinstance(item, dict):
            return False
        sku, qty = item.get("sku"), item.get("qty")
        if not isinstance(sku, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", sku, re.ASCII):
            return False
        if type(qty) is not int or not 1 <= qty <= 1000:
            return False
    return isinstance(card, str) and bool(re.fullmatch(r"[0-9]{12,19}", card.replace(" ", "")))


def fuzz_bodies(rng: random.Random, count: int) -> list[bytes]:
    bodies = []
    for i in range(count):
        choice = i % 5
        if choice == 4:
            depth = rng.choice([10, 500, 2000, 20_000])
            opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
            nested = opener * depth + b"1" + closer * depth
            bodies.append(b'{"items": [' + nested + b'], "card_number": "4242424242424242"}')
            continue
        if choice == 0:
            value = random_json(rng)
            bodies.append(json.dumps(value).encode("utf-8", "surrogatepass"))
        elif choice == 1:
            bodies.append(json.dumps(mutate(rng)).encode("utf-8", "surrogatepass"))
        elif choice == 2:
            raw = bytearray(json.dumps(VALID).encode())
            for _ in range(rng.randint(1, 4)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            bodies.append(bytes(raw))
        else:
            bodies.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))
    return bodies


def test_fuzz_never_a_500_and_always_the_json_error_shape(stack: Stack) -> None:
    rng = random.Random(20261202)
    rows = order_rows(stack)
    with_order = 0
    for body in fuzz_bodies(rng, 240):
        resp = post(stack, body)
        assert resp.status < 500 or resp.status in (502, 503, 504), (resp.status, body)
        assert resp.status != 500, body
        assert isinstance(resp.body, dict), (resp.status, resp.body, body)
        if resp.status >= 400:
            assert isinstance(resp.body["error"]["code"], str), body
            assert isinstance(resp.body["error"]["message"], str), body
        # An order (row) exactly for the bodies the strict reference validator accepts.
        assert ("order" in resp.body) == reference_accepts(body), (resp.status, resp.body, body)
        if "order" in resp.body:
            with_order += 1
        else:
            assert resp.status >= 400, (resp.status, resp.body, body)
    # Only requests that became orders (placed or failed in the saga) left a row.
    assert order_rows(stack) == rows + with_order
