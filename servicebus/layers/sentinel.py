"""Connect to a host entry: directly, or to the master its Sentinels name; check it."""

from __future__ import annotations

import asyncio
from typing import Any

from .errors import (
    RedisAuthError,
    RedisCommandError,
    RedisConfigError,
    RedisError,
    RedisTLSError,
    RedisUnavailable,
)
from .hosts import HostSpec
from .resp import HandshakeClosed, RedisConnection, open_connection


async def master_address(spec: HostSpec) -> tuple[str, int]:
    """Ask each sentinel in turn (``SENTINEL get-master-addr-by-name``); the first answer wins."""
    assert spec.master_name is not None
    problems: list[str] = []
    for sentinel in spec.sentinels:
        try:
            conn = await open_connection(sentinel, sentinel=True)
        except RedisConfigError:
            raise  # wrong sentinel password or TLS: asking the next one will not help
        except RedisUnavailable as exc:
            problems.append(str(exc))
            continue
        try:
            reply = await conn.call(
                "SENTINEL",
                "get-master-addr-by-name",
                spec.master_name,
                timeout=sentinel.socket_timeout or sentinel.connect_timeout,
            )
        except RedisError as exc:
            problems.append(f"{conn.description}: {exc}")
            continue
        finally:
            conn.close()
        if reply:
            return bytes(reply[0]).decode(), int(reply[1])
        problems.append(f"{conn.description} does not know master {spec.master_name!r}")
    raise RedisUnavailable(
        f"no sentinel named a master for {spec.master_name!r}: " + "; ".join(problems)
    )


async def connect(spec: HostSpec) -> RedisConnection:
    """A connection to the Redis ``spec`` describes (via its Sentinels if it has some)."""
    if spec.master_name is None:
        return await open_connection(spec)
    host, port = await master_address(spec)
    conn = await open_connection(spec, host, port)
    if conn.role != "master":
        # The sentinels have not caught up with a failover yet: try again shortly.
        conn.close()
        raise RedisUnavailable(
            f"{conn.description} was named master of {spec.master_name!r} but is a {conn.role}"
        )
    return conn


async def check_host(spec: HostSpec, *, cluster: bool = False) -> None:
    """Connect once (TLS, AUTH, version, SELECT) and hang up; raise what went wrong.

    Also refuses a Redis Cluster node where a plain Redis is configured (``cluster``
    False): its MOVED replies would fail every other command.
    """
    for attempt in (1, 2):
        try:
            conn = await connect(spec)
        except HandshakeClosed as exc:
            if attempt == 2:
                # Hung up on twice before any reply: a TLS port, most likely.
                raise RedisTLSError(str(exc)) from None
            await asyncio.sleep(0.2)
            continue
        info: Any = b""
        try:
            if not cluster:
                info = await conn.call("INFO", "cluster", timeout=spec.socket_timeout)
        except (RedisAuthError, RedisCommandError):
            pass  # INFO refused by an ACL: no hint, the layer works all the same
        finally:
            conn.close()
        if b"cluster_enabled:1" in bytes(info):
            raise RedisConfigError(
                f'{conn.description} is a Redis Cluster node: add "cluster": True to the '
                "layer's CONFIG (its keys are spread over the cluster's masters)"
            )
        return
