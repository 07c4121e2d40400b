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

Modules: ``core`` (the layer), ``batching`` (send coalescing), ``drain`` ('!' channels),
``connections`` (pools, version check), ``loops`` (per-event-loop state), ``scripts`` (Lua).
"""

from .connections import TRANSIENT_ERRORS, RedisVersionError
from .core import RedisChannelLayer
from .stats import STAT_NAMES

__all__ = ["STAT_NAMES", "TRANSIENT_ERRORS", "RedisChannelLayer", "RedisVersionError"]
