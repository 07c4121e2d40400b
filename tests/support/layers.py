"""Layers a test builds on a real Redis, each closed when the test ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from servicebus.layers import RedisChannelLayer

LayerFactory = Callable[..., RedisChannelLayer]


@contextlib.asynccontextmanager
async def layer_factory(**defaults: Any) -> AsyncIterator[LayerFactory]:
    """``make(**options)`` builds a layer (``defaults`` unless ``options`` say otherwise);
    every layer made is closed on exit."""
    made: list[RedisChannelLayer] = []

    def make(**options: Any) -> RedisChannelLayer:
        layer = RedisChannelLayer(**{**defaults, **options})
        made.append(layer)
        return layer

    try:
        yield make
    finally:
        for layer in made:
            await layer.close()
