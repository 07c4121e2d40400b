"""Fixtures for the layer's integration tests: layers on the session Redis, private servers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from servicebus.layers import RedisChannelLayer
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis

LayerFactory = Callable[..., RedisChannelLayer]


@pytest.fixture
async def make_layer(redis_flushed: str) -> AsyncIterator[LayerFactory]:
    """Build layers on the (flushed) session Redis; each is closed after the test."""
    made: list[RedisChannelLayer] = []

    def make(**kwargs: Any) -> RedisChannelLayer:
        kwargs.setdefault("hosts", [redis_flushed])
        layer = RedisChannelLayer(**kwargs)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        await layer.close()


@pytest.fixture
async def layer(make_layer: LayerFactory) -> RedisChannelLayer:
    """A layer with default settings on the flushed session Redis."""
    return make_layer()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone (for outages and config changes)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def acl_redis() -> Iterator[RedisServer]:
    """A server whose default user needs a password, plus a user alice/wonderland."""
    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        admin.execute_command("ACL", "SETUSER", "alice", "on", ">wonderland", "~*", "&*", "+@all")
        admin.execute_command("CONFIG", "SET", "requirepass", "adminpw")
        admin.close()
        yield server


def _self_signed_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("TLS test skipped: no openssl binary to make a self-signed certificate")
    cert, key = _self_signed_cert(tmp_path)
    port = free_port()
    args = ["--tls-port", str(port), "--port", "0", "--tls-cert-file", str(cert)]
    args += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(cert)]
    args += ["--tls-auth-clients", "no"]
    server = RedisServer(port=port, extra_args=args)
    try:
        server.start()
    except TimeoutError:
        server.stop()
        pytest.skip("TLS test skipped: this redis-server build does not support --tls-port")
    try:
        yield server, cert
    finally:
        server.stop()
