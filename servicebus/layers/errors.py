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


class RedisProtocolError(RedisUnavailable):
    """The bytes from the server are not RESP: the connection is unusable and is dropped."""


def reply_error(message: str) -> RedisError:
    """The exception for an error reply's text, classified by its leading code."""
    code = message.split(" ", 1)[0]
    if code == "NOSCRIPT":
        return RedisNoScriptError(message)
    if code in ("WRONGPASS", "NOAUTH", "NOPERM") or "invalid password" in message:
        return RedisAuthError(f"Redis refused the credentials or ACL: {message}")
    return RedisCommandError(message)


class ForeignChannelError(AssertionError, ValueError):
    """receive() on a '!' channel this layer did not make (stock channels_redis asserts)."""
