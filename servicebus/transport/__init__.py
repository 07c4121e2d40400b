"""The one seam between the core and a channel layer (see ``base.Transport``).

``get_transport()`` picks the implementation for the configured layer, in one place.
"""

from __future__ import annotations

from channels.layers import InMemoryChannelLayer, channel_layers
from channels_redis.core import RedisChannelLayer as StockRedisChannelLayer

from servicebus.conf import get_settings
from servicebus.errors import BusMisconfigured
from servicebus.layers import RedisChannelLayer

from .base import Transport, check_channel_name, map_error
from .layer import LayerTransport
from .redis import RedisTransport

__all__ = [
    "LayerTransport",
    "RedisTransport",
    "Transport",
    "check_channel_name",
    "get_transport",
    "map_error",
    "transport_for",
]

# alias -> transport; rebuilt when channels makes a new layer for the alias (settings change).
_transports: dict[str, Transport] = {}


def get_transport(alias: str | None = None) -> Transport:
    """The transport over layer ``alias`` (default ``SERVICEBUS['CHANNEL_LAYER']``); cached."""
    name = alias or get_settings().CHANNEL_LAYER
    transport = _transports.get(name)
    if transport is not None and channel_layers.backends.get(name) is transport.layer:
        return transport
    if name not in channel_layers:
        raise BusMisconfigured(f"no channel layer {name!r} in CHANNEL_LAYERS")
    transport = _transports[name] = transport_for(channel_layers[name])
    return transport


def transport_for(layer: object) -> Transport:
    """A transport driving ``layer``: the one place that tells layer kinds apart."""
    from servicebus.hooks import layer_dropped

    if isinstance(layer, RedisChannelLayer):
        return RedisTransport(layer, on_drop=layer_dropped)
    if isinstance(layer, StockRedisChannelLayer):
        return LayerTransport(layer, closer=layer.close_pools)
    if isinstance(layer, InMemoryChannelLayer):
        return LayerTransport(layer, closer=layer.close)
    return LayerTransport(layer)
