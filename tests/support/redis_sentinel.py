"""A private Sentinel setup on free loopback ports: a master, a replica, three sentinels.

Sentinels are ``redis-server <conf> --sentinel`` processes with a short
down-after-milliseconds, so a killed master is failed over in a few seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.support.redis_server import RedisServer, free_port, wait_port

MASTER_NAME = "mymaster"


class RedisSentinels:
    """Master + replica + ``count`` sentinels (quorum 2); ``stop()`` ends them all."""

    def __init__(
        self, count: int = 3, down_after_ms: int = 1000, failover_timeout_ms: int = 3000
    ) -> None:
        fast_sync = ["--repl-diskless-sync-delay", "0"]
        self.master = RedisServer(extra_args=fast_sync)
        self.replica = RedisServer(extra_args=fast_sync)
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.ports = [free_port() for _ in range(count)]
        self.dir = Path(tempfile.mkdtemp(prefix="sb-sentinel-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """(host, port) of every sentinel, as a layer's ``sentinels`` setting takes them."""
        return [("127.0.0.1", port) for port in self.ports]

    def host_entry(self, **options: object) -> dict[str, object]:
        """A ``hosts`` entry of the layer for this master."""
        return {"master_name": MASTER_NAME, "sentinels": self.sentinels, **options}

    def start(self, timeout: float = 30.0) -> RedisSentinels:
        """Start everything; wait until each sentinel knows the replica and the others."""
        self.master.start()
        self.replica.extra_args += ["--replicaof", "127.0.0.1", str(self.master.port)]
        self.replica.start()
        for port in self.ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.dir}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}\n"
                f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            proc = subprocess.Popen(
                [str(self.master.exe), str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.procs.append(proc)
            wait_port(port)
        self._wait(self._ready, timeout, "sentinels never saw the replica and each other")
        return self

    def _ready(self) -> bool:
        for port in self.ports:
            with redis.Redis(port=port, socket_timeout=2, protocol=2) as s:
                master = s.execute_command("SENTINEL", "MASTER", MASTER_NAME)
                fields = dict(zip(master[::2], master[1::2], strict=False))
                if int(fields[b"num-slaves"]) < 1 or int(fields[b"num-other-sentinels"]) < 2:
                    return False
        with redis.Redis(port=self.replica.port, socket_timeout=2) as r:
            return r.info("replication").get("master_link_status") == "up"

    @staticmethod
    def _wait(check: object, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():  # type: ignore[operator]
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{message} after {timeout}s")

    def master_port(self) -> int:
        """The master's port as the first answering sentinel names it."""
        for port in self.ports:
            try:
                with redis.Redis(port=port, socket_timeout=2, protocol=2) as s:
                    reply = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            except redis.RedisError:
                continue
            return int(reply[1])
        raise RuntimeError("no sentinel answers")

    def server(self, port: int) -> RedisServer:
        return self.master if self.master.port == port else self.replica

    def kill(self, port: int) -> None:
        """SIGKILL the Redis on ``port``."""
        self.server(port).kill()

    def wait_promoted(self, old: int, timeout: float = 30.0) -> int:
        """Until the sentinels name a master other than ``old`` and it says it is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                port = self.master_port()
                if port != old:
                    with redis.Redis(port=port, socket_timeout=2) as r:
                        if r.info("replication")["role"] == "master":
                            return port
            except (redis.RedisError, RuntimeError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"no replica was promoted in {timeout}s")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()
        for server in (self.master, self.replica):
            server.stop()
            shutil.rmtree(server.dir, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisSentinels:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
