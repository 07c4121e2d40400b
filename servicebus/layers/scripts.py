"""Lua scripts run by the layer, each called by EVALSHA and loaded once per server."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from .wire import bulk, lane_of, pack

_bulk = bulk


class LuaScript:
    """A Lua script called by SHA1; falls back to EVAL (which caches it) on NOSCRIPT."""

    __slots__ = ("_evalsha_head", "sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._evalsha_head = _bulk("EVALSHA") + _bulk(self.sha)

    async def __call__(self, client: Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script; a Redis restart (empty script cache) costs one extra round trip."""
        try:
            return await self._evalsha(client, keys, args)
        except NoScriptError:
            # EVAL both runs and caches the script, so the next EVALSHA hits.
            return await self.eval(client, keys, args)

    async def eval(self, client: Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """EVAL: runs the script and caches it (the NOSCRIPT fallback)."""
        command = pack(("EVAL", self.source, len(keys), *keys, *args))
        return await lane_of(client.connection_pool).call(command)

    def evalsha_command(self, keys: Sequence[Any], args: Sequence[Any]) -> bytes:
        """The packed EVALSHA command."""
        # Packing the RESP command here is several times cheaper than redis-py's
        # generic pack_command for the hundreds of arguments of a coalesced batch.
        parts = [b"*%d\r\n" % (3 + len(keys) + len(args)), self._evalsha_head]
        parts.append(_bulk(len(keys)))
        parts.extend(map(_bulk, keys))
        parts.extend(map(_bulk, args))
        return b"".join(parts)

    async def _evalsha(self, client: Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        # A held connection of the client's pool (see wire.Lane): no checkout per call.
        return await lane_of(client.connection_pool).call(self.evalsha_command(keys, args))


# KEYS: n channel keys (repeats allowed).
# ARGV: now, expiry, then n triples (member, capacity, score).
# Returns one status per message: 1 = added, 0 = channel full.
# Expiry cleanup, capacity check, ZADD and EXPIRE happen in one atomic step, so
# concurrent senders can never push a channel past its capacity.
SEND_MANY = LuaScript(
    """
local now = ARGV[1]
local expiry = tonumber(ARGV[2])
local cutoff = math.floor(tonumber(now)) - expiry
local statuses = {}
local seen = {}
for i = 1, #KEYS do
    local key = KEYS[i]
    if not seen[key] then
        redis.call('ZREMRANGEBYSCORE', key, 0, cutoff)
        seen[key] = true
    end
    if redis.call('ZCARD', key) < tonumber(ARGV[3 * i + 1]) then
        redis.call('ZADD', key, ARGV[3 * i + 2], ARGV[3 * i])
        statuses[i] = 1
    else
        statuses[i] = 0
    end
end
for key in pairs(seen) do
    redis.call('EXPIRE', key, expiry)
end
return statuses
"""
)

# KEYS: group key. ARGV: cutoff score. Drops members older than group_expiry, returns the rest.
GROUP_MEMBERS = LuaScript(
    """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
)

# ARGV: key pattern. Deletes every key of this layer's prefix (used by flush()).
DELETE_PREFIX = LuaScript(
    """
local keys = redis.call('KEYS', ARGV[1])
for i = 1, #keys, 5000 do
    redis.call('DEL', unpack(keys, i, math.min(i + 4999, #keys)))
end
return #keys
"""
)
