"""RPC across layers: a caller on stock channels_redis and a servicebus worker, and back."""

from __future__ import annotations

import pytest

import servicebus
from tests.integration.rpc.conftest import BACKENDS
from tests.support.processes import runworker

pytestmark = pytest.mark.redis


def _use(settings, redis_url: str, layer: str) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": BACKENDS[layer], "CONFIG": {"hosts": [redis_url]}}
    }


@pytest.mark.parametrize(
    ("caller_layer", "worker_layer"), [("stock", "servicebus"), ("servicebus", "stock")]
)
async def test_call_across_layers(settings, bus, redis_url, caller_layer, worker_layer) -> None:
    # E.g. a daphne front end still on the stock layer calling a servicebus worker.
    _use(settings, redis_url, caller_layer)
    proc = runworker(["misc.request"], redis_url=redis_url, layer=worker_layer, name=worker_layer)
    try:
        body = {"sku": "A1", "qty": 2, "blob": b"\x00\xff"}
        assert await servicebus.acall("misc.request", "echo", body, timeout=5) == body
        with pytest.raises(servicebus.RemoteError) as info:
            await servicebus.acall("misc.request", "fail", timeout=5)
        assert info.value.code == "out_of_stock"
    finally:
        assert proc.stop() == 0
