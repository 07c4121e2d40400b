"""Errors of the Redis layer, split by what a caller can do about them.

::

    RedisError                      any error of the layer's Redis client
    +-- RedisUnavailable            transient: connect failed, connection lost, timed out
    |                               (also a builtin ConnectionError, hence an OSError)
    +-- RedisConfigError            fatal: retrying cannot fix it, fix the settings
    |   +-- RedisAuthError          wrong username/password, none given, or an ACL refusal
    |   +-- RedisTLSError           TLS handshake or certificate failure, TLS/plain mismatch
    |   +-- RedisVersionError       the server is older than Redis 7.0
    +-- RedisCommandError           an error reply to one command (the connection is fine)
        +-- RedisNoScriptError      EVALSHA of a script the server does not have (internal)
        +-- RedisRedirect           Cluster: the slot is served elsewhere (internal, followed)
        |   +-- RedisMoved          for good: MOVED <slot> <host:port>
        |   +-- RedisAsk            for this command only, while a slot migrates
        +-- RedisBusy               not run, retry shortly: TRYAGAIN, CLUSTERDOWN, LOADING
        +-- RedisRoleChanged        the server stopped being a master: READONLY, UNBLOCKED

Every RedisCommandError subclass below RedisNoScriptError means the command was NOT run,
so the layer may send it again elsewhere without delivering anything twice.

Misuse of the channel layer API raises what the stock channels_redis layer raises
(TypeError for invalid names, ChannelFull, AssertionError where stock asserts).
"""

from __future__ import annotations


class RedisError(Exception):
    """Root of the layer's Redis errors."""


class RedisUnavailable(RedisError, ConnectionError):
    """Redis cannot be reached right now (connect, reset, timeout): worth retrying."""


class RedisConfigError(RedisError):
    """A configuration problem no retry can fix; processes should exit with this message."""


class RedisAuthError(RedisConfigError):
    """Authentication failed (wrong or missing credentials) or the ACL refused a command."""


class RedisTLSError(RedisConfigError):
    """TLS failed: certificate not trusted, hostname mismatch, or TLS/plain port mismatch."""


class RedisVersionError(RedisConfigError):
    """The server is older than the Redis 7.0 this layer needs (BZMPOP, ZMPOP)."""


class RedisCommandError(RedisError):
    """Redis answered one command with an error reply (``-ERR ...``)."""


class RedisNoScriptError(RedisCommandError):
    """NOSCRIPT: the server's script cache lacks the script (it restarted or was flushed)."""


class RedisRedirect(RedisCommandError):
    """Cluster: the command's slot lives on another node; it was not run."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        # "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381"
        _, slot, address = message.split(" ", 2)
        host, _, port = address.rpartition(":")
        self.slot = int(slot)
        self.address = (host, int(port))


class RedisMoved(RedisRedirect):
    """MOVED: the slot belongs to another node now (refresh the slot map)."""


class RedisAsk(RedisRedirect):
    """ASK: the slot is migrating; send this one command to the target after ASKING."""


class RedisBusy(RedisCommandError):
    """TRYAGAIN, CLUSTERDOWN or LOADING: the command was not run; try again shortly."""


class RedisRoleChanged(RedisCommandError):
    """READONLY or UNBLOCKED: the server is no longer a master; find the master again.

    The connection that got it is retired (no new commands), so the next one asks the
    sentinels or the cluster where the master is now.
    """


class RedisProtocolError(RedisUnavailable):
    """The bytes from the server are not RESP: the connection is unusable and is dropped."""


_OTHER_CODES: dict[str, type[RedisCommandError]] = {
    "MOVED": RedisMoved,
    "ASK": RedisAsk,
    "TRYAGAIN": RedisBusy,
    "CLUSTERDOWN": RedisBusy,
    "LOADING": RedisBusy,
    "READONLY": RedisRoleChanged,
    "UNBLOCKED": RedisRoleChanged,
}


def reply_error(message: str) -> RedisError:
    """The exception for an error reply's text, classified by its leading code."""
    code = message.split(" ", 1)[0]
    if code == "NOSCRIPT":
        return RedisNoScriptError(message)
    if code in _OTHER_CODES:
        return _OTHER_CODES[code](message)
    if code in ("WRONGPASS", "NOAUTH", "NOPERM") or "invalid password" in message:
        return RedisAuthError(f"Redis refused the credentials or ACL: {message}")
    return RedisCommandError(message)


class ForeignChannelError(AssertionError, ValueError):
    """receive() on a '!' channel this layer did not make (stock channels_redis asserts)."""
