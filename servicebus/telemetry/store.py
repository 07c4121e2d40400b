"""Where telemetry keeps its Redis data, and the key names (one place).

Every key lives under the channel layer's prefix and one hash tag, so a pipeline of
telemetry commands goes to one shard / one cluster slot. ``get_store()`` gives None for
a layer without Redis (the in-memory layer): the registry and call records are then off,
while stats, logs, metrics and traces work as usual.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

# Key layout, under the layer prefix (default "asgi"): see docs/operations.md.
INSTANCES = "instances"  # sorted set: instance id -> last heartbeat (unix time)
INSTANCE = "instance:"  # + instance id: JSON heartbeat payload, expires after 3 beats
CALLS = "calls"  # stream: batches of call records, MAXLEN ~


class Store(Protocol):
    """Raw Redis commands routed by key (the transport's command/pipeline seam)."""

    prefix: str

    async def command(self, key: str, *args: Any) -> Any:
        """Run one command on the shard owning ``key``."""
        ...

    async def pipeline(self, key: str, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Run ``commands`` in one round trip on the shard owning ``key``."""
        ...


def key(store: Store, name: str) -> str:
    """The full Redis key of telemetry item ``name`` (e.g. ``asgi:servicebus:{t}:calls``)."""
    return f"{store.prefix}:servicebus:{{t}}:{name}"


class RedisStore:
    """A Store over redis-py's asyncio client, one connection pool per event loop."""

    def __init__(self, address: str, prefix: str, **kwargs: Any) -> None:
        self.address = address
        self.prefix = prefix
        self.kwargs = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0, **kwargs}
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> Any:
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = redis.asyncio.Redis.from_url(self.address, **self.kwargs)
            self._clients[loop] = client
        return client

    async def command(self, key: str, *args: Any) -> Any:
        """Run one command."""
        return await self._client().execute_command(*args)

    async def pipeline(self, key: str, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Run ``commands`` in one round trip (no MULTI)."""
        pipe = self._client().pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)
        return list(await pipe.execute())

    async def close(self) -> None:
        """Close the current loop's client."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


class LayerStore:
    """A Store over our layer's raw command API (routed to the shard owning the key)."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.prefix: str = layer.prefix

    async def command(self, key: str, *args: Any) -> Any:
        """Run one command on the shard owning ``key``."""
        return await self.layer.command(key, *args)

    async def pipeline(self, key: str, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Run ``commands`` in one round trip on the shard owning ``key``."""
        return list(await self.layer.pipeline(key, [list(c) for c in commands]))


_stores: weakref.WeakKeyDictionary[Any, Store | None] = weakref.WeakKeyDictionary()


def store_for(layer: Any) -> Store | None:
    """The Store of a channel layer backed by Redis, else None (cached per layer)."""
    if layer in _stores:
        return _stores[layer]
    store: Store | None = None
    from channels_redis.core import RedisChannelLayer as StockLayer

    from servicebus.layers import RedisChannelLayer

    if isinstance(layer, RedisChannelLayer):
        store = LayerStore(layer)
    elif isinstance(layer, StockLayer) and layer.hosts:
        # The stock layer has no raw command API: a client of its first host (telemetry
        # keys share one hash tag, so one shard holds them all).
        host = dict(layer.hosts[0])
        address = host.pop("address", None)
        if isinstance(address, str):
            store = RedisStore(address, layer.prefix)
    _stores[layer] = store
    return store


def get_store(alias: str | None = None) -> Store | None:
    """The Store of the servicebus channel layer (``SERVICEBUS['CHANNEL_LAYER']``)."""
    from channels.layers import get_channel_layer

    from servicebus.conf import get_settings

    layer = get_channel_layer(alias or get_settings().CHANNEL_LAYER)
    return None if layer is None else store_for(layer)
