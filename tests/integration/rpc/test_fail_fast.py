"""runworker fails fast on what retrying cannot fix, and waits out what it can.

Auth errors, TLS errors and an unsupported Redis exit non-zero with one clear line
before "serving"; a Redis that is down at start is waited for (jittered retries).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import servicebus
from tests.integration.rpc.conftest import layer_settings
from tests.support.processes import ROOT, ManagedProcess
from tests.support.redis_server import RedisServer, free_port, tls_redis_server

pytestmark = pytest.mark.redis


def _start_worker(url: str) -> ManagedProcess:
    """A runworker that is not expected to get to "serving"."""
    args = [sys.executable, "-m", "django", "runworker", "misc.request"]
    args += ["--settings", "tests.project.settings"]
    env = {"SB_REDIS_URL": url, "SB_LAYER": "servicebus"}
    return ManagedProcess(args, env=env, cwd=ROOT, name="runworker").start()


def _assert_fails_fast(proc: ManagedProcess, *expected: str) -> None:
    try:
        code = proc.wait(30)
    finally:
        proc.stop()
    assert code != 0, proc.output
    assert "worker serving" not in proc.output
    errors = [line for line in proc.lines if line.startswith("CommandError:")]
    assert len(errors) == 1, proc.output
    for text in expected:
        assert text in errors[0], errors[0]


def test_wrong_password_exits_with_one_line() -> None:
    with RedisServer(extra_args=["--requirepass", "right"]) as server:
        url = f"redis://:wrong@127.0.0.1:{server.port}/0"
        _assert_fails_fast(_start_worker(url), "cannot serve misc.request", "CHANNEL_LAYERS")


def _hello_reply(proto: int) -> bytes:
    # What a Redis 6.2 answers to HELLO: a map (RESP3) or a flat array (RESP2).
    fields = [
        (b"server", b"$5\r\nredis\r\n"),
        (b"version", b"$6\r\n6.2.14\r\n"),
        (b"proto", b":%d\r\n" % proto),
        (b"id", b":1\r\n"),
        (b"mode", b"$10\r\nstandalone\r\n"),
        (b"role", b"$6\r\nmaster\r\n"),
        (b"modules", b"*0\r\n"),
    ]
    head = b"%%%d\r\n" % len(fields) if proto == 3 else b"*%d\r\n" % (2 * len(fields))
    return head + b"".join(b"$%d\r\n%s\r\n%s" % (len(k), k, v) for k, v in fields)


class OldRedis:
    """A fake Redis 6.2 (HELLO and INFO say 6.2.14; +OK to anything else), on loopback."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while (command := self._command(buffer)) is not None:
                    parts, buffer = command
                    name = parts[0].upper()
                    if name == b"HELLO":
                        proto = int(parts[1]) if len(parts) > 1 else 2
                        conn.sendall(_hello_reply(proto))
                    elif name == b"INFO":
                        info = b"# Server\r\nredis_version:6.2.14\r\n"
                        conn.sendall(b"$%d\r\n%s\r\n" % (len(info), info))
                    else:
                        conn.sendall(b"+OK\r\n")

    @staticmethod
    def _command(buffer: bytes) -> tuple[list[bytes], bytes] | None:
        # One RESP array of bulk strings: its elements and the rest of the buffer.
        if not buffer.startswith(b"*") or b"\r\n" not in buffer:
            return None
        head, rest = buffer.split(b"\r\n", 1)
        parts = []
        for _ in range(int(head[1:])):
            if b"\r\n" not in rest:
                return None
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line[1:])
            if len(rest) < size + 2:
                return None
            parts.append(rest[:size])
            rest = rest[size + 2 :]
        return parts, rest

    def close(self) -> None:
        self.sock.close()


def test_redis_older_than_7_exits_with_one_line() -> None:
    server = OldRedis()
    try:
        url = f"redis://127.0.0.1:{server.port}/0"
        _assert_fails_fast(_start_worker(url), "7.0")
    finally:
        server.close()


@pytest.fixture
def untrusted_tls_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A TLS-only redis-server with a self-signed certificate the client does not trust."""
    with tls_redis_server(tmp_path) as (server, _):
        yield server


def test_untrusted_tls_certificate_exits_with_one_line(untrusted_tls_redis) -> None:
    url = f"rediss://127.0.0.1:{untrusted_tls_redis.port}/0"
    _assert_fails_fast(_start_worker(url), "TLS")


async def test_redis_down_at_start_is_waited_for(settings, bus) -> None:
    port = free_port()
    proc = await asyncio.to_thread(_start_worker, f"redis://127.0.0.1:{port}/0")
    try:
        await asyncio.to_thread(proc.wait_for, "retrying", 20)
        assert proc.alive() and "worker serving" not in proc.output
        with RedisServer(port=port) as server:
            await asyncio.to_thread(proc.wait_for, "worker serving", 30)
            settings.CHANNEL_LAYERS = layer_settings(server.url)
            assert await servicebus.acall("misc.request", "echo", 7, timeout=5) == 7
    finally:
        assert proc.stop() == 0
