"""The layer's counters, and the drop listener every dropped message is reported to."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: Counter names in ``RedisChannelLayer.stats``.
STAT_NAMES = (
    "script_calls",  # send script calls made by the send coalescer
    "direct_sends",  # large messages sent without a script (MULTI/EXEC, capacity after)
    "channel_full",  # sends refused with ChannelFull
    "kept_after_cancel",  # messages popped for a cancelled receive, kept for the next one
    "drainer_restarts",  # drainer tasks restarted after an unexpected error
    "redirects",  # Redis Cluster MOVED/ASK replies followed
    "slot_map_refreshes",  # Redis Cluster slot maps loaded
    # Drop reasons (each also reported to ``on_drop``):
    "expired",  # older than ``expiry`` when read
    "undecodable",  # no serializer could read it (garbage, wrong key, foreign format)
    "not_a_dict",  # decoded, but not a dict (a message is always a dict)
    "bad_channel",  # its ``__asgi_channel__`` tag is not a channel name or a list of them
    "local_buffer_full",  # the local buffer of its '!' channel was full (oldest dropped)
    "group_member_full",  # group_send skipped a member whose channel was full
)

DropListener = Callable[[str, int], None]

# A listener that raises is logged at most this often (it may be called per message).
_LOG_EVERY = 60.0


class LayerStats(dict[str, int]):
    """Counters by name; ``drop()`` also tells ``on_drop(reason, count)`` when one is set."""

    def __init__(self) -> None:
        super().__init__(dict.fromkeys(STAT_NAMES, 0))
        self.on_drop: DropListener | None = None
        self._logged: dict[str, float] = {}

    def drop(self, reason: str, count: int = 1) -> None:
        """Count ``count`` messages dropped for ``reason`` and report them to the listener."""
        self[reason] = self.get(reason, 0) + count
        listener = self.on_drop
        if listener is not None:
            try:
                listener(reason, count)
            except Exception:
                if self.should_log("on_drop"):
                    logger.exception("the layer's on_drop listener failed")

    def should_log(self, what: str) -> bool:
        """True at most once a minute per ``what``: per-message warnings must not flood logs."""
        now = time.monotonic()
        last = self._logged.get(what)
        if last is not None and now - last < _LOG_EVERY:
            return False
        self._logged[what] = now
        return True
