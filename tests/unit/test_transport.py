"""The transport seam: one error mapping, the implementation picked per layer, adapters."""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from redis import exceptions as redis_errors

from servicebus.errors import (
    Backpressure,
    BadRequest,
    BusMisconfigured,
    BusUnavailable,
    ServiceBusError,
)
from servicebus.layers import RedisChannelLayer, RedisVersionError
from servicebus.metrics import metrics
from servicebus.transport import (
    LayerTransport,
    RedisTransport,
    check_channel_name,
    get_transport,
    map_error,
    transport_for,
)
from servicebus.transport.base import report_sent


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ChannelFull("inventory.request"), Backpressure),
        (redis_errors.ConnectionError("refused"), BusUnavailable),
        (redis_errors.TimeoutError("slow"), BusUnavailable),
        (ConnectionRefusedError(111, "refused"), BusUnavailable),
        (OSError("no route"), BusUnavailable),
        (redis_errors.AuthenticationError("invalid password"), BusMisconfigured),
        (redis_errors.NoPermissionError("NOPERM"), BusMisconfigured),
        (ssl.SSLCertVerificationError("certificate verify failed"), BusMisconfigured),
        (RedisVersionError("needs 7.0"), BusMisconfigured),
    ],
)
def test_layer_errors_map_to_one_servicebus_error(error, expected) -> None:
    mapped = map_error(error, "inventory.request")
    assert type(mapped) is expected
    # Misconfiguration is a kind of unavailability for callers, but never retried by us.
    assert isinstance(mapped, BusUnavailable) or expected is Backpressure


def test_unknown_errors_pass_through_and_ours_stay() -> None:
    bug = ValueError("a bug")
    assert map_error(bug) is bug
    ours = BadRequest("x")
    assert map_error(ours) is ours


@pytest.mark.parametrize("name", ["", "a b", "é.request", "x" * 100, None, 3, "a!b!c"])
def test_invalid_channel_names_are_bad_requests(name) -> None:
    with pytest.raises(BadRequest, match="channel name"):
        check_channel_name(name)


def test_valid_channel_names_pass() -> None:
    for name in ("inventory.request", "servicebus.reply.abc!def", "a-b_c.1"):
        assert check_channel_name(name) == name


def test_get_transport_picks_per_layer_and_follows_settings(settings) -> None:
    transport = get_transport()
    assert isinstance(transport, LayerTransport)
    assert isinstance(transport.layer, InMemoryChannelLayer)
    assert get_transport() is transport  # cached
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "servicebus.layers.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    redis_transport = get_transport()
    assert isinstance(redis_transport, RedisTransport)
    assert isinstance(redis_transport.layer, RedisChannelLayer)
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    assert isinstance(get_transport(), LayerTransport)


def test_unknown_alias_is_misconfigured() -> None:
    with pytest.raises(BusMisconfigured, match="nope"):
        get_transport("nope")


def test_layer_drops_reach_the_counters_and_hooks() -> None:
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"])
    transport_for(layer)
    assert layer.on_drop is not None
    layer.on_drop("expired", 3)
    assert metrics.get("layer_expired") == 3


async def test_send_outcome_is_mapped() -> None:
    layer = InMemoryChannelLayer(capacity=1)
    transport = LayerTransport(layer)
    outcomes: list[ServiceBusError | None] = []
    transport.send_nowait("full.request", {"n": 1}, outcomes.append)
    transport.send_nowait("full.request", {"n": 2}, outcomes.append)
    await asyncio.sleep(0.01)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], Backpressure)
    with pytest.raises(Backpressure):
        await transport.send("full.request", {"n": 3})


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, type(None)),
        (ChannelFull("a.request"), Backpressure),
        (RedisVersionError("needs 7.0"), BusMisconfigured),
        (RuntimeError("a layer bug"), BusUnavailable),  # never a bare exception to a caller
    ],
)
def test_every_send_outcome_reaches_the_sender_as_a_servicebus_error(error, expected) -> None:
    outcomes: list[ServiceBusError | None] = []
    report_sent("a.request", outcomes.append, error)
    assert len(outcomes) == 1 and type(outcomes[0]) is expected


async def test_redis_transport_maps_a_failed_send() -> None:
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"])  # nothing listens there
    transport = RedisTransport(layer)
    outcome: asyncio.Future[ServiceBusError | None] = asyncio.get_running_loop().create_future()
    transport.send_nowait("a.request", {"n": 1}, outcome.set_result)
    assert isinstance(await asyncio.wait_for(outcome, 10), BusUnavailable)
    await transport.close()


async def test_layer_receive_times_out_without_losing_the_pending_message() -> None:
    layer = InMemoryChannelLayer()
    transport = LayerTransport(layer)
    assert await transport.receive("q.request", 4, timeout=0.05) == []
    await layer.send("q.request", {"n": 1})
    # The receive left pending by the timeout is adopted, not lost.
    assert await transport.receive("q.request", 4, timeout=1) == [{"n": 1}]


async def test_layer_claims_are_set_if_absent_until_expiry() -> None:
    transport = LayerTransport(InMemoryChannelLayer())
    soon = time.time() + 0.2
    assert await transport.claim([("a", soon), ("b", soon), ("a", soon)]) == [True, True, False]
    assert await transport.claim([("a", soon)]) == [False]
    assert await transport.claim([("c", time.time() - 1)]) == [False]  # already expired
    await asyncio.sleep(0.25)
    assert await transport.claim([("a", time.time() + 1)]) == [True]
