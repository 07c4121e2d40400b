"""The servicebus Redis channel layer (fast, atomic, at-most-once).

Configure it like channels_redis, plus a few options of its own::

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "servicebus.layers.RedisChannelLayer",
            "CONFIG": {
                "hosts": ["redis://user:pass@127.0.0.1:6379/0"],  # or rediss://, dicts, sentinels
                "capacity": 100,
                "expiry": 60,
                "max_batch": 64,  # messages per coalesced send script call
                "block_timeout": 1.0,  # server-side BZMPOP timeout, looped
            },
        }
    }

For a Redis Cluster, list seed nodes and add ``"cluster": True``; for Sentinel, a host
entry ``{"master_name": ..., "sentinels": [...]}`` (see docs/layer.md and docs/scaling.md).

Modules: ``core`` (the layer), ``codec`` (message bytes), ``batching`` (send coalescing),
``drain`` ('!' channels), ``leftovers`` (cancelled pops), ``routing`` (shards or cluster
slots), ``cluster`` (slot map, redirections), ``resp`` (the RESP client), ``pool`` /
``connections`` (per-loop connections), ``hosts`` (settings), ``sentinel``, ``loops``,
``scripts`` (Lua), ``groups``, ``stats``, ``errors``.
"""

from .core import RedisChannelLayer
from .errors import (
    RedisAuthError,
    RedisCommandError,
    RedisConfigError,
    RedisError,
    RedisTLSError,
    RedisUnavailable,
    RedisVersionError,
)
from .stats import STAT_NAMES

#: Errors that mean "Redis is unreachable right now" (retry later).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (RedisUnavailable,)

__all__ = [
    "STAT_NAMES",
    "TRANSIENT_ERRORS",
    "RedisAuthError",
    "RedisChannelLayer",
    "RedisCommandError",
    "RedisConfigError",
    "RedisError",
    "RedisTLSError",
    "RedisUnavailable",
    "RedisVersionError",
]
