"""Connection settings, the Redis version check and the script helper."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from redis.exceptions import NoScriptError
from redis.utils import HIREDIS_AVAILABLE

from servicebus.layers import RedisChannelLayer, RedisVersionError
from servicebus.layers.connections import ShardClients
from servicebus.layers.scripts import SEND_MANY, LuaScript


def _kwargs(clients: ShardClients) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        clients.commands.connection_pool.connection_kwargs,
        clients.blocking.connection_pool.connection_kwargs,
    )


def test_hiredis_parser_is_available() -> None:
    assert HIREDIS_AVAILABLE


def test_blocking_socket_timeout_outlasts_the_pop() -> None:
    host = {"address": "redis://127.0.0.1:1/0", "socket_timeout": 0.3}
    commands, blocking = _kwargs(
        ShardClients(host, block_timeout=1.0, max_connections=8, max_blocking_connections=8)
    )
    assert commands["socket_timeout"] == 0.3  # the config wins for commands
    assert blocking["socket_timeout"] >= 2.0  # but never undercuts a blocking pop
    assert commands["socket_connect_timeout"] == blocking["socket_connect_timeout"] == 2.0


def test_pools_block_instead_of_overflowing() -> None:
    clients = ShardClients(
        {"host": "127.0.0.1", "port": 1},
        block_timeout=1.0,
        max_connections=8,
        max_blocking_connections=16,
    )
    assert clients.commands.connection_pool.max_connections == 8
    assert clients.blocking.connection_pool.max_connections == 16
    assert type(clients.blocking.connection_pool).__name__ == "BlockingConnectionPool"


async def test_old_redis_is_refused() -> None:
    clients = ShardClients(
        {"address": "redis://127.0.0.1:1/0"},
        block_timeout=1.0,
        max_connections=8,
        max_blocking_connections=8,
    )

    async def info(section: str) -> dict[str, str]:
        return {"redis_version": "6.2.14"}

    clients.commands.info = info  # type: ignore[method-assign]
    with pytest.raises(RedisVersionError, match=r"7\.0"):
        await clients.check_version()


class _NoScriptYet:
    """A Redis that just restarted: EVALSHA fails once with NOSCRIPT."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.connection_pool = self

    async def get_connection(self) -> _NoScriptYet:
        return self

    async def release(self, conn: _NoScriptYet) -> None:
        pass

    async def send_packed_command(self, packed: bytes, check_health: bool = True) -> None:
        self.calls.append(packed.split(b"\r\n")[2].decode())

    async def read_response(self) -> str:
        if self.calls[-1] == "EVALSHA":
            raise NoScriptError("NOSCRIPT No matching script")
        return "ran"

    async def execute_command(self, *args: Any) -> str:
        self.calls.append(args[0])
        return "ran"


async def test_script_reloads_after_noscript() -> None:
    script = LuaScript("return 1")
    assert script.sha == hashlib.sha1(b"return 1").hexdigest()
    client = _NoScriptYet()
    assert await script(client, [], []) == "ran"  # type: ignore[arg-type]
    assert client.calls == ["EVALSHA", "EVAL"]
    assert SEND_MANY.sha != script.sha


def test_layer_keeps_stock_config_and_extensions() -> None:
    layer = RedisChannelLayer(
        hosts=[("127.0.0.1", 1)], prefix="sb", expiry=30, capacity=7, max_batch=32
    )
    assert layer.hosts == [{"host": "127.0.0.1", "port": 1}]
    assert (layer.prefix, layer.expiry, layer.capacity, layer.max_batch) == ("sb", 30, 7, 32)
    assert layer.extensions == ["groups", "flush"]
    with pytest.raises(ValueError, match="block_timeout"):
        RedisChannelLayer(block_timeout=0)
