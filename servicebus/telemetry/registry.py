"""The instance registry: each worker heartbeats who it is and how it is doing into Redis.

One beat every ``HEARTBEAT_INTERVAL`` seconds, whatever the traffic: a SET with a TTL of
three beats (a dead instance disappears on its own), a ZADD in the index of instances
and a trim of that index, in one round trip. The payload carries the stats summary and
15 minutes of history for sparklines (a fixed ring), so its size is bounded. While Redis
is down the worker keeps serving and the next beat that gets through catches up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from servicebus.telemetry import store as keys
from servicebus.telemetry.identity import HOST, STARTED, VERSION, instance_id
from servicebus.telemetry.logs import drop_log
from servicebus.telemetry.stats import stats
from servicebus.telemetry.store import Store

logger = logging.getLogger("servicebus.telemetry")

# The index forgets instances silent for this long (their payload key expired long ago).
INDEX_RETENTION = 3600.0


class Heartbeat:
    """Writes this instance's payload every ``interval`` seconds until cancelled."""

    def __init__(
        self,
        store: Store,
        services: Mapping[str, str],
        *,
        layer: Any = None,
        interval: float = 5.0,
        on_backlog: Callable[[str, int], None] | None = None,
    ) -> None:
        self.store = store
        self.services = dict(services)  # service name -> request channel
        self.layer = layer
        self.interval = interval
        self.on_backlog = on_backlog
        self.failing = False
        self.beats = 0

    async def backlog(self) -> dict[str, tuple[int | None, int | None]]:
        """(messages waiting, capacity) of each request channel (None when unknown)."""
        out: dict[str, tuple[int | None, int | None]] = {}
        for channel in self.services.values():
            capacity = self.layer.get_capacity(channel) if self.layer is not None else None
            # The channels_redis layout: one sorted set per channel at prefix + name.
            key = self.store.prefix + channel
            try:
                waiting = int(await self.store.command(key, "ZCARD", key))
            except Exception:
                waiting = None
            if waiting is not None and self.on_backlog is not None:
                self.on_backlog(channel, waiting)
            out[channel] = (waiting, capacity)
        return out

    def payload(self, backlog: Mapping[str, tuple[int | None, int | None]]) -> dict[str, Any]:
        """The JSON body of one beat."""
        now = time.time()
        services = {}
        for name, channel in self.services.items():
            summary = dict(stats.snapshot(name, now, fresh=True))
            waiting, capacity = backlog.get(channel, (None, None))
            summary.update(channel=channel, backlog=waiting, capacity=capacity)
            services[name] = summary
        return {
            "instance": instance_id(),
            "host": HOST,
            "pid": os.getpid(),
            "version": VERSION,
            "started": STARTED,
            "ts": now,
            "interval": self.interval,
            "services": services,
        }

    async def beat(self) -> bool:
        """Write one beat; False (logged once per outage) when Redis is unreachable."""
        drop_log.flush()
        try:
            body = json.dumps(self.payload(await self.backlog()), separators=(",", ":"))
            now = time.time()
            me = instance_id()
            await self.store.pipeline(
                keys.key(self.store, keys.INSTANCES),
                [
                    ["SET", keys.key(self.store, keys.INSTANCE + me), body,
                     "PX", int(self.interval * 3000)],
                    ["ZADD", keys.key(self.store, keys.INSTANCES), now, me],
                    ["ZREMRANGEBYSCORE", keys.key(self.store, keys.INSTANCES), "-inf",
                     now - INDEX_RETENTION],
                ],
            )  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self.failing:
                logger.warning("instance heartbeat failed: %r; retrying every beat", exc)
            self.failing = True
            return False
        if self.failing:
            logger.info("instance heartbeat written again")
        self.failing = False
        self.beats += 1
        return True

    async def run(self) -> None:
        """Beat now, then every ``interval`` seconds, until cancelled."""
        while True:
            await self.beat()
            await asyncio.sleep(self.interval)

    async def remove(self) -> None:
        """Take this instance out of the registry at once (a clean stop)."""
        me = instance_id()
        try:
            await self.store.pipeline(
                keys.key(self.store, keys.INSTANCES),
                [
                    ["DEL", keys.key(self.store, keys.INSTANCE + me)],
                    ["ZREM", keys.key(self.store, keys.INSTANCES), me],
                ],
            )
        except Exception as exc:  # the entry expires on its own anyway
            logger.info("could not remove the registry entry: %r", exc)
