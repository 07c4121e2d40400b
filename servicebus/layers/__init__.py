"""The servicebus Redis channel layer (fast, atomic, at-most-once)."""

from .connections import RedisVersionError
from .core import STAT_NAMES, RedisChannelLayer

__all__ = ["STAT_NAMES", "RedisChannelLayer", "RedisVersionError"]
