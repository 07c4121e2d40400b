"""Services used by the unit tests: a nested chain A -> B -> C and a few behaviours."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypedDict

import servicebus
from servicebus import Request, Service, ServiceError

chain_a = Service("chain_a")
chain_b = Service("chain_b")
chain_c = Service("chain_c")
misc = Service("misc")

# Worker logs carry the correlation ID ([cid] in tests/project/settings.py's format).
logger = logging.getLogger("tests.project.services")


def _snapshot(request: Request) -> dict[str, Any]:
    logger.info("hop %s.%s", request.service, request.method)
    return {
        "service": request.service,
        "cid": request.correlation_id,
        "headers": dict(request.headers),
        "flags": sorted(request.flags),
        "remaining": request.remaining(),
        "deadline": request.deadline,
        "caller": request.caller,
    }


@chain_a.method()
async def start(request: Request) -> list[dict[str, Any]]:
    me = _snapshot(request)
    below = await servicebus.acall("chain_b.request", "middle", request.body, timeout=30)
    return [me, *below]


@chain_b.method()
def middle(request: Request) -> list[dict[str, Any]]:
    # A sync handler making a sync nested call: goes through the bridge thread.
    me = _snapshot(request)
    below = servicebus.call("chain_c.request", "leaf", request.body, timeout=30)
    return [me, *below]


@chain_c.method()
async def leaf(request: Request) -> list[dict[str, Any]]:
    return [_snapshot(request)]


@misc.method()
async def echo(request: Request) -> Any:
    return request.body


@misc.method()
async def record(request: Request) -> Any:
    # Tests count these lines in the worker's output: one per run of the handler.
    logger.info("recorded %s", request.body)
    return request.body


class Greeting(TypedDict):
    name: str


@misc.method(body=Greeting)
def greet(request: Request) -> str:
    """Say hello: a typed body, so _info reports its schemas."""
    return f"hello {request.body['name']}"


@misc.method("sync_echo")
def sync_echo(request: Request) -> Any:
    return request.body


@misc.method()
async def sleep(request: Request) -> float:
    logger.info("sleeping %s", request.body)  # tests wait for these lines
    await asyncio.sleep(float(request.body or 0))
    return float(request.body or 0)


@misc.method()
def sync_sleep(request: Request) -> float:
    time.sleep(float(request.body or 0))
    return float(request.body or 0)


@misc.method()
async def fail(request: Request) -> None:
    raise ServiceError("out_of_stock", "only 3 left", {"sku": "A1", "available": 3})


@misc.method()
async def crash(request: Request) -> None:
    raise KeyError("secret-internal-detail")


@misc.method()
async def bad_reply(request: Request) -> Any:
    return object()


@misc.method()
async def remaining(request: Request) -> float:
    return request.remaining()


@misc.method()
async def nested_remaining(request: Request) -> float:
    # Ask for a long timeout: the nested call must still be capped by our deadline.
    return float(await servicebus.acall("misc.request", "remaining", timeout=60))


@misc.method()
async def detached_remaining(request: Request) -> list[Any]:
    # bind() inside a handler: same correlation ID, but not capped by our deadline.
    with servicebus.bind():
        remaining = await servicebus.acall("misc.request", "remaining", timeout=30)
        cid = servicebus.current_correlation_id()
    return [remaining, cid, request.correlation_id]
