"""Redis clients for one shard: one pool for commands, another for blocking pops."""

from __future__ import annotations

from typing import Any

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .wire import close_lane

MIN_REDIS_VERSION = (7, 0)

#: Errors that mean "Redis is unreachable right now"; the client maps them to BusUnavailable.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
)


class RedisVersionError(RuntimeError):
    """The Redis server is older than 7.0, which has no BZMPOP/ZMPOP."""


def _pool(host: dict[str, Any], **defaults: Any) -> aioredis.ConnectionPool:
    """A pool for one host config (URL, kwargs or sentinel); the config wins over defaults."""
    host = dict(host)
    kwargs = {**defaults, **host}
    if "address" in kwargs:
        address = kwargs.pop("address")
        return aioredis.BlockingConnectionPool.from_url(address, **kwargs)
    master_name = kwargs.pop("master_name", None)
    if master_name is not None:
        sentinels = kwargs.pop("sentinels")
        sentinel_kwargs = kwargs.pop("sentinel_kwargs", None)
        # SentinelConnectionPool is not a blocking pool: a generous cap stands in for waiting.
        kwargs.pop("timeout", None)
        return aioredis.sentinel.SentinelConnectionPool(
            master_name,
            aioredis.sentinel.Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs),
            **kwargs,
        )
    return aioredis.BlockingConnectionPool(**kwargs)


class ShardClients:
    """The two clients of one shard in one event loop.

    Blocking pops get their own pool so a long BZMPOP never holds a connection that
    sends need; both pools block (wait) instead of raising "Too many connections".
    """

    __slots__ = ("blocking", "commands")

    def __init__(
        self,
        host: dict[str, Any],
        *,
        block_timeout: float,
        max_connections: int,
        max_blocking_connections: int,
    ) -> None:
        # No command retries: re-running a send script after a lost reply could
        # deliver a message twice, and we promise at-most-once.
        common = {"socket_connect_timeout": 2.0, "retry": Retry(NoBackoff(), 0)}
        self.commands = aioredis.Redis(
            connection_pool=_pool(
                host, socket_timeout=5.0, max_connections=max_connections, timeout=2.0, **common
            )
        )
        blocking_pool = _pool(
            host,
            socket_timeout=block_timeout + 5.0,
            max_connections=max_blocking_connections,
            timeout=None,
            **common,
        )
        # The socket timeout must outlast the server-side pop timeout, whatever the
        # host config says, or an idle receive would time out (channels_redis's trap).
        floor = block_timeout + 1.0
        configured = blocking_pool.connection_kwargs.get("socket_timeout")
        if configured is not None and configured < floor:
            blocking_pool.connection_kwargs["socket_timeout"] = floor
        self.blocking = aioredis.Redis(connection_pool=blocking_pool)

    async def check_version(self) -> None:
        """Raise RedisVersionError unless the server is Redis >= 7.0 (also surfaces auth errors)."""
        info = await self.commands.info("server")
        version = str(info.get("redis_version", "0"))
        parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if parts < MIN_REDIS_VERSION:
            raise RedisVersionError(
                f"servicebus needs Redis >= 7.0 (BZMPOP); this server runs {version}"
            )

    async def aclose(self) -> None:
        """Close both pools' connections."""
        for client in (self.commands, self.blocking):
            await close_lane(client.connection_pool)
            await client.aclose(close_connection_pool=True)
