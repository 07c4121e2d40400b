"""ACL users and TLS, passed through to redis-py from the host config."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.exceptions

from servicebus.layers import RedisChannelLayer
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis


@pytest.fixture
def acl_redis() -> Iterator[RedisServer]:
    """A server whose default user needs a password, plus a user alice/wonderland."""
    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        admin.execute_command("ACL", "SETUSER", "alice", "on", ">wonderland", "~*", "&*", "+@all")
        admin.execute_command("CONFIG", "SET", "requirepass", "adminpw")
        admin.close()
        yield server


async def test_acl_user_can_send_and_receive(acl_redis: RedisServer) -> None:
    url = f"redis://alice:wonderland@127.0.0.1:{acl_redis.port}/0"
    layer = RedisChannelLayer(hosts=[url])
    try:
        await layer.send("svc", {"n": 1})
        assert await layer.receive("svc") == {"n": 1}
        reply = await layer.new_channel()
        await layer.send(reply, {"n": 2})
        assert await asyncio.wait_for(layer.receive(reply), 5) == {"n": 2}
    finally:
        await layer.close()


async def test_wrong_password_is_a_clear_error(acl_redis: RedisServer) -> None:
    url = f"redis://alice:wrong@127.0.0.1:{acl_redis.port}/0"
    layer = RedisChannelLayer(hosts=[url])
    try:
        with pytest.raises(redis.exceptions.AuthenticationError, match="invalid username"):
            await layer.send("svc", {})
        # Receives do not retry forever on a wrong password.
        with pytest.raises(redis.exceptions.AuthenticationError):
            await asyncio.wait_for(layer.receive_many("svc", 1, timeout=1), 5)
    finally:
        await layer.close()


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


async def test_tls_connection(tls_redis: tuple[RedisServer, Path]) -> None:
    server, cert = tls_redis
    host = {"address": f"rediss://127.0.0.1:{server.port}/0", "ssl_ca_certs": str(cert)}
    layer = RedisChannelLayer(hosts=[host])
    try:
        await layer.send("secure", {"n": 1})
        assert await layer.receive("secure") == {"n": 1}
        reply = await layer.new_channel()
        await layer.send(reply, {"n": 2})
        assert await asyncio.wait_for(layer.receive(reply), 5) == {"n": 2}
    finally:
        await layer.close()
