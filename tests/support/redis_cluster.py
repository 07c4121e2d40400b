"""A private Redis Cluster on free loopback ports: N masters with a replica each.

Built from real processes: ``redis-server --cluster-enabled yes`` per node, joined by
``redis-cli --cluster create``. A redis-server or redis-cli without cluster support
makes ``start()`` raise (tests fail loudly, they never skip).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from typing import Any

import redis

from tests.support.redis_server import RedisServer

NODE_TIMEOUT_MS = 1000


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too and below 65536.

    The OS's ephemeral ports (32768+) may have no room for the bus port above them.
    """
    for _ in range(200):
        port = random.randint(20000, 29999)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisCluster:
    """``masters`` masters, each with ``replicas`` replicas; ``stop()`` ends them all."""

    def __init__(
        self, masters: int = 3, replicas: int = 1, node_timeout_ms: int = NODE_TIMEOUT_MS
    ) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.node_timeout_ms = node_timeout_ms
        self.replicas = replicas
        self.master_count = masters
        self.nodes: list[RedisServer] = []
        for _ in range(masters * (1 + replicas)):
            port = cluster_port()
            args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(node_timeout_ms),
                # A failed-over master's replica must be allowed to take over at once.
                "--cluster-replica-validity-factor", "0",
                # Replicas sync at once (the default waits 5 s for more replicas).
                "--repl-diskless-sync-delay", "0",
            ]  # fmt: skip
            self.nodes.append(RedisServer(port=port, extra_args=args))

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def urls(self) -> list[str]:
        """Seed URLs (every node; any one is enough for a client)."""
        return [f"redis://127.0.0.1:{port}" for port in self.ports]

    def start(self, timeout: float = 30.0) -> RedisCluster:
        """Start the nodes, create the cluster, wait until every slot is served and synced."""
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed: cannot create a Redis Cluster")
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        replicas = ["--cluster-replicas", str(self.replicas)]
        done = subprocess.run(
            [cli, "--cluster", "create", *addresses, *replicas, "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        self.wait_healthy(timeout)
        return self

    def client(self, port: int) -> redis.Redis:
        """A plain (non-cluster) redis-py client of one node."""
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, protocol=2)

    def shards(self, port: int | None = None) -> list[dict[str, Any]]:
        """CLUSTER SHARDS as seen by a node: [{"slots": [...], "nodes": [{...}, ...]}]."""
        ports = [port] if port is not None else self.live_ports()
        for candidate in ports:
            try:
                with self.client(candidate) as c:
                    raw = c.execute_command("CLUSTER", "SHARDS")
            except redis.RedisError:
                continue
            return [_shard(s) for s in raw]
        raise RuntimeError("no cluster node answers")

    def live_ports(self) -> list[int]:
        return [n.port for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def masters(self, port: int | None = None) -> list[int]:
        """Ports of the online masters that serve slots (as node ``port`` sees them)."""
        return [
            node["port"]
            for shard in self.shards(port)
            if shard["slots"]
            for node in shard["nodes"]
            if node["role"] == "master" and node["health"] == "online"
        ]

    def master_of(self, key: str | bytes) -> int:
        """Port of the master serving ``key``'s slot."""
        with self.client(self.live_ports()[0]) as c:
            slot = int(c.execute_command("CLUSTER", "KEYSLOT", key))
        for shard in self.shards():
            ranges = shard["slots"]
            if any(a <= slot <= b for a, b in zip(ranges[::2], ranges[1::2], strict=False)):
                for node in shard["nodes"]:
                    if node["role"] == "master" and node["health"] == "online":
                        return int(node["port"])
        raise RuntimeError(f"no online master serves slot {slot}")

    def replica_of(self, master_port: int) -> int:
        """Port of a replica of the master at ``master_port``."""
        for shard in self.shards():
            ports = {n["port"]: n for n in shard["nodes"]}
            if master_port in ports and ports[master_port]["role"] == "master":
                for port, node in ports.items():
                    if node["role"] == "replica":
                        return int(port)
        raise RuntimeError(f"{master_port} has no replica")

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def kill(self, port: int) -> None:
        """SIGKILL one node (it loses whatever it had not replicated)."""
        self.node(port).kill()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every live node says cluster_state:ok, every slot has an online master,
        and every live replica's link to its master is up."""
        deadline = time.monotonic() + timeout
        problem = "not checked yet"
        while time.monotonic() < deadline:
            problem = self._problem()
            if problem is None:
                return
            time.sleep(0.1)
        raise TimeoutError(f"cluster not healthy after {timeout}s: {problem}")

    def _problem(self) -> str | None:
        try:
            for port in self.live_ports():
                # Every node must see the same masters (roles spread by gossip).
                if len(self.masters(port)) != self.master_count:
                    return f"{port} sees {len(self.masters(port))} masters"
                with self.client(port) as c:
                    info = bytes(c.execute_command("CLUSTER", "INFO")).decode()
                    if "cluster_state:ok" not in info:
                        return f"{port}: cluster_state not ok"
                    replication = c.info("replication")
                    if replication["role"] == "slave" and (
                        replication.get("master_link_status") != "up"
                    ):
                        return f"{port}: replica link down"
            covered = 0
            for shard in self.shards():
                if any(n["role"] == "master" and n["health"] == "online" for n in shard["nodes"]):
                    ranges = shard["slots"]
                    covered += sum(b - a + 1 for a, b in zip(ranges[::2], ranges[1::2]))
            if covered != 16384:
                return f"{covered} of 16384 slots have an online master"
            for shard in self.shards():
                for node in shard["nodes"]:
                    # A replica reports "loading" until its offset moves: its link is enough.
                    if node["role"] == "master" and node["port"] in self.live_ports():
                        if node["health"] != "online":
                            return f"master {node['port']} is {node['health']}"
        except redis.RedisError as exc:
            return repr(exc)
        return None

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
            shutil.rmtree(node.dir, ignore_errors=True)

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _shard(raw: list[Any]) -> dict[str, Any]:
    fields = dict(zip(raw[::2], raw[1::2], strict=False))
    nodes = []
    for node in fields[b"nodes"]:
        info = dict(zip(node[::2], node[1::2], strict=False))
        nodes.append(
            {
                "port": int(info[b"port"]),
                "role": info[b"role"].decode(),
                "health": info[b"health"].decode(),
                "id": info[b"id"].decode(),
            }
        )
    return {"slots": [int(s) for s in fields[b"slots"]], "nodes": nodes}
