"""The transport seam: what the core needs from a channel layer, with errors mapped once.

The client, the worker and the reply router talk to a ``Transport``, never to a layer:

    Transport                 send_nowait / send / receive / listen / claim / check / close
    ├── RedisTransport        servicebus.layers.RedisChannelLayer's native API (batched)
    └── LayerTransport        any channels layer through the standard API (in-memory, stock)

``map_error`` is the one place where layer, Redis and OS errors become servicebus errors:
``Backpressure`` (channel full), ``BusUnavailable`` (transient: retry),
``BusMisconfigured`` (fatal: credentials, TLS, server version) and ``BadRequest``.
"""

from __future__ import annotations

import abc
import asyncio
import re
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer
from redis import exceptions as redis_errors

from servicebus.conf import REPLY_CHANNEL_PREFIX
from servicebus.errors import (
    Backpressure,
    BadRequest,
    BusMisconfigured,
    BusUnavailable,
    ServiceBusError,
)
from servicebus.layers import RedisCommandError, RedisConfigError, RedisVersionError
from servicebus.layers.stats import DropListener

__all__ = [
    "Delivered",
    "DropListener",
    "Sent",
    "Transport",
    "check_channel_name",
    "map_error",
    "report_sent",
]

# What a listener gets: every message of one batch, in order.
Delivered = Callable[[list[Any]], None]
# Called once when a send settles: None when Redis took it, else the mapped error.
Sent = Callable[[ServiceBusError | None], None]

# Retrying cannot fix these: wrong credentials or ACL, TLS set up wrongly, an old server.
# (Extend in one line when a layer adds fatal error types.)
FATAL_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.AuthenticationError,
    redis_errors.AuthorizationError,
    redis_errors.NoPermissionError,
    ssl.SSLCertVerificationError,
    RedisVersionError,
    RedisConfigError,  # servicebus's layer: RedisAuthError, RedisTLSError, RedisVersionError
)
# Redis is away or slow right now: a later attempt may work.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ResponseError,  # e.g. OOM, LOADING, READONLY after a failover
    RedisCommandError,  # the same from servicebus's layer (RedisUnavailable is an OSError)
    ConnectionError,
    TimeoutError,
    OSError,
)


def _tls_failure(exc: BaseException) -> BaseException | None:
    # redis-py wraps a failed TLS handshake in its ConnectionError; the cause says why.
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 5:
        if isinstance(cause, ssl.SSLCertVerificationError) or (
            isinstance(cause, ssl.SSLError) and cause.reason == "WRONG_VERSION_NUMBER"
        ):
            return cause
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return None


def map_error(exc: BaseException, channel: str | None = None) -> BaseException:
    """The servicebus error for a layer/Redis/OS error; anything else is returned as is."""
    if isinstance(exc, ServiceBusError):
        return exc
    if isinstance(exc, ChannelFull):
        where = channel or (str(exc.args[0]) if exc.args else "the channel")
        return Backpressure(f"{where} is at capacity; nothing was sent")
    if isinstance(exc, FATAL_ERRORS):
        return BusMisconfigured(f"the channel layer refused us: {type(exc).__name__}: {exc}")
    if isinstance(exc, TRANSIENT_ERRORS) and (tls := _tls_failure(exc)) is not None:
        return BusMisconfigured(f"TLS to the channel layer failed: {tls}")
    if isinstance(exc, TRANSIENT_ERRORS):
        return BusUnavailable(f"cannot reach the channel layer: {type(exc).__name__}: {exc}")
    if isinstance(exc, asyncio.CancelledError):
        return BusUnavailable("the send was cancelled (the layer is closing)")
    return exc


def report_sent(channel: str, sent: Sent, error: BaseException | None) -> None:
    """Tell ``sent`` how a send to ``channel`` ended: None, or its error as a ServiceBusError."""
    if error is None:
        sent(None)
        return
    mapped = map_error(error, channel)
    if not isinstance(mapped, ServiceBusError):
        mapped = BusUnavailable(f"sending to {channel} failed: {error!r}")
    sent(mapped)


_NAME = re.compile(BaseChannelLayer.channel_name_regex.pattern)
_MAX_NAME = BaseChannelLayer.MAX_NAME_LENGTH
_valid_names: set[str] = set()


def check_channel_name(name: Any) -> str:
    """``name`` if it is a valid channels channel name, else BadRequest (checked once per name)."""
    if name in _valid_names:
        return str(name)
    if not isinstance(name, str) or not name or len(name) >= _MAX_NAME or not _NAME.match(name):
        raise BadRequest(
            f"invalid channel name {name!r}: use ASCII letters, digits, '-', '_' and '.', "
            f"at most {_MAX_NAME - 1} characters"
        )
    if len(_valid_names) >= 4096:  # bounded: names can come from the wire
        _valid_names.clear()
    _valid_names.add(name)
    return name


class Transport(abc.ABC):
    """What the core needs from a channel layer; every method raises mapped errors only."""

    #: The layer this transport drives (for a test or an admin command that needs it).
    layer: Any
    #: True when cancelling ``receive`` loses nothing (what it would have taken stays with
    #: the transport for the next receive): a stopping worker cancels it at once instead
    #: of waiting for its timeout.
    interruptible_receive: bool = False

    @abc.abstractmethod
    def send_nowait(self, channel: str, message: dict[str, Any], sent: Sent | None = None) -> None:
        """Queue ``message`` for ``channel`` without waiting; ``sent`` gets the outcome.

        Raises BadRequest at once for a message that cannot be sent at all.
        """

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send and wait until the layer took it (Backpressure/BusUnavailable otherwise)."""
        outcome: asyncio.Future[ServiceBusError | None] = asyncio.get_running_loop().create_future()
        self.send_nowait(channel, message, outcome.set_result)
        error = await outcome
        if error is not None:
            raise error

    @abc.abstractmethod
    async def receive(
        self, channel: str, max_count: int, timeout: float | None = None
    ) -> list[Any]:
        """Up to ``max_count`` messages of ``channel``; ``[]`` after ``timeout`` seconds."""

    async def reply_channel(self) -> str:
        """A new process-local channel name for replies to this process (``new_channel``)."""
        try:
            return str(await self.layer.new_channel(REPLY_CHANNEL_PREFIX))
        except Exception as exc:
            raise map_error(exc) from exc

    @abc.abstractmethod
    async def listen(self, channel: str, deliver: Delivered) -> None:
        """Call ``deliver(batch)`` for the messages of reply channel ``channel`` until cancelled.

        Returns or raises (a mapped error) only when listening broke; the caller restarts it.
        """

    @abc.abstractmethod
    async def check(self) -> None:
        """Connect and check the server; BusMisconfigured (fatal) or BusUnavailable."""

    @abc.abstractmethod
    async def claim(self, keys_and_expiry: Sequence[tuple[str, float]]) -> list[bool]:
        """Set each key if absent, expiring at its unix time; True where it was new.

        One round trip for the whole batch (replay protection of signed requests).
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release this event loop's connections (queued sends are flushed first)."""

    def settle(self, channel: str, sent: Sent, future: asyncio.Future[None]) -> None:
        """Done-callback of a layer send future: report its mapped outcome to ``sent``."""
        if future.cancelled():
            sent(BusUnavailable("the send was cancelled (the layer is closing)"))
            return
        report_sent(channel, sent, future.exception())
