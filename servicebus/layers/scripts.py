"""Lua scripts run by the layer, each called by EVALSHA and loaded once per server."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from .errors import RedisNoScriptError
from .pool import Commands
from .resp import BIG_PIECE, Piece, bulk


class LuaScript:
    """A Lua script called by SHA1; falls back to EVAL (which caches it) on NOSCRIPT."""

    __slots__ = ("_eval_head", "_evalsha_head", "sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._evalsha_head = bulk("EVALSHA") + bulk(self.sha)
        self._eval_head = bulk("EVAL") + bulk(source)

    async def __call__(self, client: Commands, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script; a Redis restart (empty script cache) costs one extra round trip."""
        try:
            return await client.submit(self.evalsha(keys, args))
        except RedisNoScriptError:
            # EVAL both runs and caches the script, so the next EVALSHA hits.
            return await client.submit(self.eval(keys, args))

    def evalsha(self, keys: Sequence[Any], args: Sequence[Any]) -> Piece | list[Piece]:
        """The packed EVALSHA command (pieces when an argument is large)."""
        return self._command(self._evalsha_head, keys, args)

    def eval(self, keys: Sequence[Any], args: Sequence[Any]) -> Piece | list[Piece]:
        """The packed EVAL command (the NOSCRIPT fallback)."""
        return self._command(self._eval_head, keys, args)

    def encoded(
        self, parts: list[Piece], nargs: int, *, sha: bool = True, big: bool = False
    ) -> Piece | list[Piece]:
        """EVALSHA (or EVAL) of already encoded numkeys/keys/args: ``nargs`` bulk strings.

        For callers that encode their arguments more cheaply themselves (the coalescer);
        ``big``: some part is large, keep the pieces (no joined copy).
        """
        head = self._evalsha_head if sha else self._eval_head
        pieces: list[Piece] = [b"*%d\r\n" % (2 + nargs), head, *parts]
        return pieces if big else b"".join(pieces)

    @staticmethod
    def _command(head: bytes, keys: Sequence[Any], args: Sequence[Any]) -> Piece | list[Piece]:
        # Packed here: several times cheaper than a generic packer for the hundreds of
        # arguments of a coalesced batch. A large member stays its own piece (no copy).
        parts: list[Piece] = [b"*%d\r\n" % (3 + len(keys) + len(args)), head, bulk(len(keys))]
        parts.extend(map(bulk, keys))
        big = False
        for arg in args:
            if type(arg) is tuple:
                # A large member as (prefix, payload) pieces of one bulk string (Codec.member).
                parts.append(b"$%d\r\n" % sum(map(len, arg)))
                parts += arg
                parts.append(b"\r\n")
                big = True
            elif type(arg) is bytes and len(arg) >= BIG_PIECE:
                parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
                big = True
            else:
                parts.append(bulk(arg))
        return parts if big else b"".join(parts)


# KEYS: n channel keys (repeats allowed).
# ARGV: now, expiry, then n triples (member, capacity, score).
# Returns one status per message: 1 = added, 0 = channel full.
# Expiry cleanup, capacity check, ZADD and EXPIRE happen in one atomic step, so
# concurrent senders can never push a channel past its capacity. Each key is cleaned
# and counted once; its accepted members go in one ZADD (in chunks): a batch of replies
# to one caller costs four commands, not two per message.
SEND_MANY = LuaScript(
    """
local now = ARGV[1]
local expiry = tonumber(ARGV[2])
local cutoff = math.floor(tonumber(now)) - expiry
local statuses = {}
local count = {}
local adds = {}
local order = {}
for i = 1, #KEYS do
    local key = KEYS[i]
    local card = count[key]
    if card == nil then
        redis.call('ZREMRANGEBYSCORE', key, 0, cutoff)
        card = redis.call('ZCARD', key)
        adds[key] = {}
        order[#order + 1] = key
    end
    if card < tonumber(ARGV[3 * i + 1]) then
        local pending = adds[key]
        pending[#pending + 1] = ARGV[3 * i + 2]
        pending[#pending + 1] = ARGV[3 * i]
        card = card + 1
        statuses[i] = 1
    else
        statuses[i] = 0
    end
    count[key] = card
end
for _, key in ipairs(order) do
    local pending = adds[key]
    for first = 1, #pending, 2000 do
        redis.call('ZADD', key, unpack(pending, first, math.min(first + 1999, #pending)))
    end
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
