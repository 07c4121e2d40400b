"""The orders HTTP API: POST /orders, GET /orders/<id>, GET /products, GET /health.

Async views: bus calls are ``await servicebus.acall(...)`` on the server's event loop,
ORM code runs through ``edge.db`` (Django's executor).
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

import servicebus
from orders.edge import db, edge
from orders.http_errors import ClientError, allow, error_response
from orders.intake import (
    OrderRequest,
    open_order,
    parse_order_request,
    read_json_body,
    validate_idempotency_key,
)
from orders.models import Order
from orders.saga import OrderSaga

logger = logging.getLogger("orders.http")

HEALTH_TIMEOUT = 1.0


@allow("POST")
@edge
async def create_order(request: HttpRequest) -> JsonResponse:
    """Place an order: 201 confirmed, 200 replayed, 202 in progress, 4xx/5xx failed."""
    try:
        order_request = parse_order_request(read_json_body(request))
        key = validate_idempotency_key(request.headers.get("Idempotency-Key"))
    except ClientError as exc:  # nothing written yet: a refused request leaves no row
        return error_response(exc.code, str(exc))
    order, created = await db(open_order)(order_request, key)
    if not created:
        return await db(replayed)(order, order_request)
    saga = OrderSaga(order, order_request.card_number)
    if saga.direct is not None:  # in-process calls (the monolith baseline): all in a thread
        return await db(lambda: order_response(saga.run()))()
    await saga.arun()
    return await db(lambda: order_response(saga.settle()))()


def replayed(order: Order, order_request: OrderRequest) -> JsonResponse:
    """The order an Idempotency-Key already made, if the request is the same one."""
    if order.request_fingerprint != order_request.fingerprint():
        return error_response(
            "idempotency_key_reused", "this Idempotency-Key was used for a different order"
        )
    logger.info("order %s replayed for its Idempotency-Key", order.id)
    return order_response(order, replayed=True)


def order_response(order: Order, *, replayed: bool = False) -> JsonResponse:
    """The order, with the status its state maps to."""
    body = {"order": order.as_dict()}
    if order.status == Order.Status.FAILED:
        return error_response(order.failure_code, order.failure_message, **body)
    if order.status == Order.Status.PENDING:
        # A concurrent duplicate still running: the client polls GET /orders/<id>.
        return JsonResponse(body, status=202)
    response = JsonResponse(body, status=200 if replayed else 201)
    response["Location"] = f"/orders/{order.id}"
    return response


@allow("GET")
@edge
async def get_order(request: HttpRequest, order_id: str) -> JsonResponse:
    """One order with its saga log, or 404."""
    return await db(order_by_id)(order_id)


def order_by_id(order_id: str) -> JsonResponse:
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return error_response("not_found", f"no order {order_id}")
    return JsonResponse({"order": order.as_dict()})


@allow("GET")
@edge
async def list_products(request: HttpRequest) -> JsonResponse:
    """Products and stock, read from the inventory service over the bus."""
    try:
        reply = await servicebus.acall(
            "inventory.request", "list_products", timeout=settings.ORDERS_CALL_TIMEOUT
        )
    except servicebus.ServiceBusError as exc:
        return error_response(exc.code, str(exc))
    return JsonResponse(reply)


@allow("GET")
@edge
async def health(request: HttpRequest) -> JsonResponse:
    """200 when the database and every service (over the bus) answer, else 503."""
    services = ("inventory", "pricing", "orders")
    results = await asyncio.gather(db(check_database)(), *(ping(name) for name in services))
    checks = dict(zip(("database", *services), results, strict=True))
    healthy = all(result == "ok" for result in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unhealthy", "checks": checks},
        status=200 if healthy else 503,
    )


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means unhealthy; say which
        return f"error: {exc.__class__.__name__}"
    return "ok"


async def ping(service: str) -> str:
    try:
        await servicebus.acall(f"{service}.request", "ping", timeout=HEALTH_TIMEOUT)
    except servicebus.ServiceBusError as exc:
        return f"error: {exc.code}"
    return "ok"
