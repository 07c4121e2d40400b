"""A small RESP2 client on asyncio: a Protocol per connection, replies parsed by hiredis.

Commands are written at once (``transport.write``; large values as their own pieces,
never joined into one big buffer) and pipelined: each connection keeps a FIFO of the
futures waiting for replies, and ``data_received`` resolves them in order. A connection
whose oldest pending command is late past its timeout is aborted (its state is unknown);
every pending future then fails with RedisUnavailable. On connect: TLS if configured,
then ``HELLO 2 [AUTH user pass] [SETNAME name]`` (which also tells the server version,
role and client id) and ``SELECT db``, pipelined in one round trip.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, cast

import hiredis

from .errors import (
    RedisAuthError,
    RedisCommandError,
    RedisError,
    RedisProtocolError,
    RedisRoleChanged,
    RedisTLSError,
    RedisUnavailable,
    RedisVersionError,
    reply_error,
)
from .hosts import HostSpec

MIN_REDIS_VERSION = (7, 0)

# A value at least this long is written as its own piece (no copy into a joined buffer).
BIG_PIECE = 64 * 1024

Piece = bytes | bytearray | memoryview


def bulk(value: Any) -> bytes:
    """One RESP bulk string, encoded as redis-py encodes arguments."""
    if type(value) is bytes:
        data = value
    elif isinstance(value, str):
        data = value.encode()
    elif isinstance(value, float):
        data = repr(value).encode()
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    else:
        data = str(value).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack(args: Sequence[Any]) -> bytes:
    """A whole RESP command (small arguments: one joined buffer)."""
    return b"*%d\r\n%b" % (len(args), b"".join(map(bulk, args)))


def pack_pieces(args: Sequence[Any]) -> list[Piece]:
    """A RESP command as pieces: a large bytes/memoryview argument is not copied."""
    pieces: list[Piece] = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes | memoryview) and len(arg) >= BIG_PIECE:
            pieces.append(b"$%d\r\n" % _nbytes(arg))
            pieces.append(arg)
            pieces.append(b"\r\n")
        else:
            pieces.append(bulk(arg))
    return pieces


def _nbytes(value: bytes | memoryview) -> int:
    return value.nbytes if isinstance(value, memoryview) else len(value)


def _write(transport: asyncio.WriteTransport, data: Piece | list[Piece]) -> None:
    if not isinstance(data, list):
        transport.write(data)
        return
    # Join runs of small pieces (one syscall each run); write big ones as they are.
    small: list[Piece] = []
    for piece in data:
        if len(piece) >= BIG_PIECE:
            if small:
                transport.write(b"".join(small))
                small = []
            transport.write(piece)
        else:
            small.append(piece)
    if small:
        transport.write(small[0] if len(small) == 1 else b"".join(small))


class RedisConnection(asyncio.Protocol):
    """One connection: ``send`` writes a command and returns the future of its reply."""

    def __init__(self, loop: asyncio.AbstractEventLoop, description: str) -> None:
        self._loop = loop
        self.description = description
        self._reader = hiredis.Reader(replyError=RedisCommandError)
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._deadlines: deque[float] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._transport: asyncio.Transport | None = None
        self._error: RedisError | None = None
        self._lost: asyncio.Future[None] = loop.create_future()
        # Set when the server stopped being a master: no new commands, closed when idle.
        self._retired = False
        #: Filled by the handshake: the server's client id (for CLIENT UNBLOCK), version, role.
        self.client_id: int | None = None
        self.version: tuple[int, ...] = ()
        self.role: str = ""

    # ---- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (asyncio and uvloop set TCP_NODELAY themselves)."""
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Parse every complete reply and resolve the waiting futures in order."""
        reader = self._reader
        reader.feed(data)
        pending = self._pending
        deadlines = self._deadlines
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self._abort(RedisProtocolError(f"{self.description}: not RESP ({exc})"))
                return
            if reply is False:
                if self._retired and not pending:
                    self.close()
                return
            if not pending:
                self._abort(RedisProtocolError(f"{self.description}: a reply nobody asked for"))
                return
            future = pending.popleft()
            deadlines.popleft()
            # A done future: its waiter gave up; the reply is read all the same.
            if type(reply) is RedisCommandError:
                error = reply_error(str(reply))
                if isinstance(error, RedisRoleChanged):
                    # A demoted master: this connection will never take writes again.
                    self._retired = True
                if not future.done():
                    future.set_exception(error)
            elif not future.done():
                future.set_result(reply)

    def eof_received(self) -> bool:
        """The server closed its side: close ours too."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail every pending command; the connection is not used again."""
        if self._error is None:
            reason = f": {exc}" if exc else " by the server"
            self._error = RedisUnavailable(f"connection to {self.description} closed{reason}")
        self._fail_pending(self._error)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = float("inf")
        if not self._lost.done():
            self._lost.set_result(None)

    # ---- commands ----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True once the transport is up (for TLS: after the TLS handshake)."""
        return self._transport is not None

    @property
    def is_open(self) -> bool:
        """True while new commands can be written (not after the server lost its master role)."""
        return self._error is None and self._transport is not None and not self._retired

    @property
    def idle(self) -> bool:
        """True when no reply is outstanding."""
        return not self._pending

    def send(
        self, data: Piece | list[Piece], timeout: float | None = None, replies: int = 1
    ) -> asyncio.Future[Any]:
        """Write one command (or ``replies`` pipelined ones); the future of the last reply.

        ``timeout``: seconds the reply may take before the connection is given up.
        """
        future: asyncio.Future[Any] = self._loop.create_future()
        if self._error is not None or self._transport is None:
            future.set_exception(self._error or RedisUnavailable(f"{self.description}: closed"))
            return future
        _write(self._transport, data)
        deadline = float("inf") if timeout is None else self._loop.time() + timeout
        pending = self._pending
        for _ in range(replies - 1):
            pending.append(_DISCARD)
            self._deadlines.append(deadline)
        pending.append(future)
        self._deadlines.append(deadline)
        if deadline < self._timer_at:
            # The watchdog looks at the oldest pending command; arm it for the earliest.
            self._arm(deadline)
        return future

    def send_all(
        self, commands: Iterable[Piece | list[Piece]], timeout: float | None = None
    ) -> list[asyncio.Future[Any]]:
        """Pipeline several commands; one future per reply."""
        return [self.send(command, timeout) for command in commands]

    async def call(self, *args: Any, timeout: float | None = None) -> Any:
        """Run one command and return its reply (error replies raise)."""
        return await self.send(pack(args), timeout)

    def set_keepalive(self) -> None:
        """Turn on TCP keepalive (a dead peer behind a silent network is noticed)."""
        sock = self._transport.get_extra_info("socket") if self._transport else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def close(self) -> None:
        """Close now; pending commands fail with RedisUnavailable."""
        if self._error is None:
            self._error = RedisUnavailable(f"connection to {self.description} closed")
        if self._transport is not None:
            self._transport.close()
        self._fail_pending(self._error)

    async def wait_closed(self) -> None:
        """Wait until the transport has really gone (after ``close``), at most a second."""
        if self._transport is not None and not self._lost.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._lost), 1.0)
            except TimeoutError:
                self._transport.abort()

    def _abort(self, error: RedisError) -> None:
        if self._error is None:
            self._error = error
        if self._transport is not None:
            self._transport.abort()
        self._fail_pending(self._error)

    def _fail_pending(self, error: RedisError) -> None:
        pending, self._pending = self._pending, deque()
        self._deadlines.clear()
        for future in pending:
            if not future.done():
                # A fresh instance each: one exception object must not collect tracebacks
                # of many awaiters.
                future.set_exception(type(error)(*error.args))

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._check_deadline)
        self._timer_at = when

    def _check_deadline(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        if not self._deadlines:
            return
        # Replies come in order: if the oldest command is late, the connection is stuck.
        oldest = self._deadlines[0]
        now = self._loop.time()
        if now >= oldest:
            self._abort(RedisUnavailable(f"timeout reading from {self.description}"))
        elif oldest != float("inf"):
            self._arm(oldest)
        elif min(self._deadlines) != float("inf"):
            self._arm(now + 1.0)  # behind a command without timeout: look again later

    # ---- handshake ---------------------------------------------------------------

    async def handshake(self, spec: HostSpec, *, sentinel: bool = False) -> None:
        """Authenticate, learn version/role/id, select the db: one round trip."""
        if sentinel:
            # Sentinels: AUTH only when configured; no version or db.
            if spec.password is not None:
                args: list[Any] = ["AUTH", spec.password]
                if spec.username:
                    args.insert(1, spec.username)
                await self._handshake_reply(self.send(pack(args), spec.connect_timeout))
            return
        hello: list[Any] = ["HELLO", 2]
        if spec.password is not None:
            hello += ["AUTH", spec.username or "default", spec.password]
        if spec.client_name:
            hello += ["SETNAME", spec.client_name]
        futures = [self.send(pack(hello), spec.connect_timeout)]
        if spec.db:
            futures.append(self.send(pack(["SELECT", spec.db]), spec.connect_timeout))
        info = await self._handshake_reply(futures[0])
        for future in futures[1:]:
            await self._handshake_reply(future)
        fields = dict(zip(info[::2], info[1::2], strict=False))
        self.client_id = int(fields.get(b"id", 0))
        self.role = bytes(fields.get(b"role", b"")).decode()
        version = bytes(fields.get(b"version", b"0")).decode()
        self.version = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
        if self.version[:2] < MIN_REDIS_VERSION:
            raise RedisVersionError(
                f"servicebus needs Redis >= 7.0 (BZMPOP); {self.description} runs {version}"
            )

    async def _handshake_reply(self, future: asyncio.Future[Any]) -> Any:
        try:
            return await future
        except RedisAuthError:
            raise
        except RedisCommandError as exc:
            text = str(exc)
            if "unknown command" in text.lower() and "hello" in text.lower():
                raise RedisVersionError(
                    f"servicebus needs Redis >= 7.0; {self.description} does not know HELLO"
                ) from None
            if "AUTH" in text and ("without any password" in text or "no password" in text):
                raise RedisAuthError(
                    f"{self.description}: a password is configured but the server has none "
                    f"for this user ({text})"
                ) from None
            raise


class HandshakeClosed(RedisUnavailable):
    """The server hung up before answering HELLO (a TLS port does that to plain clients)."""


class _Discard:
    """Stands in for the replies of a pipeline before its last one (they are dropped)."""

    __slots__ = ()

    def done(self) -> bool:
        return True


_DISCARD: Any = _Discard()


async def open_connection(
    spec: HostSpec,
    host: str | None = None,
    port: int | None = None,
    *,
    sentinel: bool = False,
) -> RedisConnection:
    """Connect to ``spec`` (or to ``host:port`` with its settings) and hand-shake.

    Raises RedisUnavailable (unreachable, timed out, closed), RedisAuthError,
    RedisTLSError or RedisVersionError.
    """
    loop = asyncio.get_running_loop()
    host = spec.host if host is None else host
    port = spec.port if port is None else port
    where = f"unix:{spec.path}" if spec.path else f"{host}:{port}"
    description = f"Redis at {where}" if not sentinel else f"Redis Sentinel at {where}"
    made: list[RedisConnection] = []

    def factory() -> RedisConnection:
        # Called once the TCP connection is up (before a TLS handshake).
        made.append(RedisConnection(loop, description))
        return made[0]

    try:
        # TCP, TLS and the handshake each get the connect timeout.
        async with asyncio.timeout(spec.connect_timeout * (3 if spec.ssl else 2)):
            if spec.path is not None:
                await loop.create_unix_connection(
                    factory, spec.path, ssl=spec.ssl, ssl_handshake_timeout=_tls_timeout(spec)
                )
            else:
                await loop.create_connection(
                    factory,
                    host,
                    port,
                    ssl=spec.ssl,
                    server_hostname=host if spec.ssl else None,
                    ssl_handshake_timeout=_tls_timeout(spec),
                )
            conn = made[0]
            if spec.keepalive and spec.path is None:
                conn.set_keepalive()
            await conn.handshake(spec, sentinel=sentinel)
        return conn
    except BaseException as exc:
        for conn in made:
            conn.close()
        if isinstance(exc, RedisUnavailable) and not spec.ssl and made and made[0].connected:
            # Hung up on before the first reply: a TLS port drops a plain client this way.
            raise HandshakeClosed(
                f"{exc} during the handshake (if it is a TLS port, use rediss://)"
            ) from None
        if isinstance(exc, RedisError):
            raise
        if isinstance(exc, ssl.SSLCertVerificationError):
            raise RedisTLSError(f"{description}: certificate not trusted ({exc})") from None
        if isinstance(exc, ssl.SSLError):
            raise RedisTLSError(f"{description}: TLS failed ({exc}); is it a TLS port?") from None
        if spec.ssl and made and not made[0].connected and isinstance(exc, OSError):
            # Connected, but no TLS handshake: a plain server waits for a command forever.
            raise RedisTLSError(
                f"{description}: no TLS handshake ({exc or 'timed out'}); is it a plain port? "
                "(use redis://, not rediss://)"
            ) from None
        if isinstance(exc, TimeoutError):
            raise RedisUnavailable(f"{description}: connect timed out") from None
        if isinstance(exc, OSError):
            raise RedisUnavailable(f"{description}: {exc.strerror or exc}") from None
        raise


def _tls_timeout(spec: HostSpec) -> float | None:
    return spec.connect_timeout if spec.ssl else None
