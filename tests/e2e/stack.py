"""The example services as real processes: three runworkers and daphne, over HTTP.

Pricing's and orders' replicas of inventory's products get their initial copy with
``servicebus_dump | servicebus_load``; with ``replication=True`` the stack also runs
inventory's ``servicebus_relay`` and a ``servicebus_consume`` per service, so later
changes flow through the events.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.support.processes import ROOT, ManagedProcess, daphne
from tests.support.redis_server import free_port

SERVICES = ("inventory", "pricing", "orders")
SERVICES_DIR = ROOT / "services"
CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_UNAVAILABLE = "4000000000000119"
CARD_SLOW = "4000000000000259"  # charged after 2.5 s

# Each stack gets its own Redis database: a stack's leftovers never reach the next one.
_redis_dbs = itertools.count(1)


@dataclass
class Response:
    status: int
    headers: Message  # case-insensitive, like HTTP
    body: Any


@dataclass
class Stack:
    """A running set of services; ``request()`` talks to the orders HTTP API."""

    data_dir: Path
    port: int
    env: dict[str, str]
    workers: dict[str, ManagedProcess] = field(default_factory=dict)
    web: ManagedProcess | None = None
    # servicebus_relay / servicebus_consume processes, by name ("inventory-relay", ...).
    replication: dict[str, ManagedProcess] = field(default_factory=dict)
    service_envs: dict[str, dict[str, str]] = field(default_factory=dict)
    # Each runworker serves Prometheus metrics on its own port (--metrics-port).
    metrics_ports: dict[str, int] = field(default_factory=dict)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw, hdrs = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            status, raw, hdrs = exc.code, exc.read(), exc.headers
        return Response(status, hdrs, json.loads(raw) if raw else None)

    def raw(
        self, method: str, path: str, data: bytes | None, headers: dict[str, str] | None = None
    ) -> Response:
        """Send ``data`` as it is; the body is parsed as JSON when it is JSON, else kept as text."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw, hdrs = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            status, raw, hdrs = exc.code, exc.read(), exc.headers
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        return Response(status, hdrs, body)

    def order(self, items: list[dict], card: str = CARD_OK, **headers: str) -> Response:
        """POST /orders; keyword headers use underscores (Idempotency_Key=...)."""
        hdrs = {name.replace("_", "-"): value for name, value in headers.items()}
        return self.request("POST", "/orders", {"items": items, "card_number": card}, hdrs)

    def stock(self, sku: str) -> int:
        products = self.request("GET", "/products").body["products"]
        return next(p["stock"] for p in products if p["sku"] == sku)

    def query(self, service: str, sql: str, *params: Any) -> list[tuple]:
        """Read a service's own SQLite database (what its owner alone would see)."""
        with contextlib.closing(sqlite3.connect(self.data_dir / f"{service}.sqlite3")) as db:
            return db.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def connect(self, service: str) -> Iterator[sqlite3.Connection]:
        """Write to a service's SQLite database behind its back (committed on exit)."""
        db = sqlite3.connect(self.data_dir / f"{service}.sqlite3", timeout=20)
        try:
            with db:
                yield db
        finally:
            db.close()

    def lines(self, service: str) -> list[str]:
        return list(self.workers[service].lines)

    def manage(self, service: str, *args: str, stdin: str | None = None, **env: str) -> str:
        """Run a service's management command to completion; its stdout."""
        result = subprocess.run(
            _manage(service, *args),
            env={**os.environ, **self.service_envs[service], **env},
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, f"{service} {args}: {result.stdout}{result.stderr}"
        return result.stdout

    def start_web(self, **env: str) -> ManagedProcess:
        """(Re)start daphne for the orders HTTP API, with ``env`` added; wait until it listens."""
        if self.web is not None:
            self.web.stop(timeout=10)
        self.web = ManagedProcess(
            daphne(self.port, "orders_project"),
            env={**self.service_envs["orders"], **env},
            cwd=SERVICES_DIR / "orders",
            name="daphne",
        ).start()
        self.web.wait_for("Listening on TCP address", timeout=30)
        return self.web

    def processes(self) -> list[ManagedProcess]:
        return [p for p in [self.web, *self.workers.values(), *self.replication.values()] if p]

    def crashes(self) -> list[str]:
        """Traceback lines any process logged: expected failures never log one."""
        procs = self.processes()
        return [f"{p.name}: {line}" for p in procs for line in p.lines if "Traceback" in line]

    def stop(self) -> None:
        procs = self.processes()
        for proc in procs:
            proc.signal()
        for proc in procs:
            proc.stop(timeout=10)


def _manage(service: str, *args: str) -> list[str]:
    return [sys.executable, str(SERVICES_DIR / service / "manage.py"), *args]


def start_stack(
    redis_url: str,
    data_dir: Path,
    *,
    call_timeout: float = 3.0,
    capacity: int = 100,
    database_urls: dict[str, str] | None = None,
    replication: bool = False,
    extra_env: dict[str, str] | None = None,
    products: list[list[str]] | None = None,
) -> Stack:
    """Migrate and seed each service's database, start the workers and daphne.

    Databases are SQLite files in ``data_dir`` unless ``database_urls`` names others.
    The replicas get their initial copy from a dump of inventory; ``replication`` also
    starts the relay and the consumers. ``products`` are ``set_product`` argument lists
    run at inventory before that copy; ``extra_env`` goes to every process.
    """
    env = {
        # The shop's shared contract (shop_contracts) lives in services/contracts.
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(SERVICES_DIR / "contracts")]),
        "REDIS_URL": urlunsplit(urlsplit(redis_url)._replace(path=f"/{next(_redis_dbs)}")),
        "CHANNEL_CAPACITY": str(capacity),
        "ORDERS_CALL_TIMEOUT": str(call_timeout),
        **(extra_env or {}),
    }
    stack = Stack(data_dir=data_dir, port=free_port(), env=env)

    def service_env(service: str) -> dict[str, str]:
        return {
            **env,
            # The test session's own DJANGO_SETTINGS_MODULE must not leak into the services.
            "DJANGO_SETTINGS_MODULE": f"{service}_project.settings",
            "DATABASE_URL": (database_urls or {}).get(service)
            or f"sqlite:///{data_dir / f'{service}.sqlite3'}",
        }

    def setup(service: str) -> None:
        for command in (["migrate", "-v0"], ["load_sample_data"]):
            subprocess.run(
                _manage(service, *command),
                env={**os.environ, **service_env(service)},
                stdout=subprocess.DEVNULL,
                check=True,
                timeout=60,
            )

    with ThreadPoolExecutor(len(SERVICES)) as pool:
        list(pool.map(setup, SERVICES))
    stack.service_envs = {service: service_env(service) for service in SERVICES}
    for product in products or []:
        stack.manage("inventory", "set_product", *product)
    # The documented initial copy: a full dump of the source, loaded into each replica.
    dump = stack.manage("inventory", "servicebus_dump", "inventory.Product")
    with ThreadPoolExecutor(2) as pool:
        loads = [
            pool.submit(stack.manage, service, "servicebus_load", f"{service}.Product", stdin=dump)
            for service in ("pricing", "orders")
        ]
        for load in loads:
            load.result()
    try:
        if replication:
            start_replication(stack)
        for service in SERVICES:
            stack.metrics_ports[service] = free_port()
            stack.workers[service] = ManagedProcess(
                _manage(
                    service,
                    "runworker",
                    f"{service}.request",
                    "--concurrency",
                    "64",
                    "--metrics-port",
                    f"127.0.0.1:{stack.metrics_ports[service]}",
                ),
                env=service_env(service),
                cwd=SERVICES_DIR / service,
                name=f"{service}-worker",
            ).start()
        stack.start_web()
        for proc in stack.workers.values():
            proc.wait_for("worker serving", timeout=30)
    except BaseException:
        stack.stop()
        raise
    return stack


def start_replication(stack: Stack) -> None:
    """inventory's relay, a consumer per service (inventory's answers re-sync requests),
    and orders' recovery loop."""
    commands = {"inventory-relay": ("inventory", "servicebus_relay")}
    for service in SERVICES:
        commands[f"{service}-consumer"] = (service, "servicebus_consume")
    for name, (service, command) in commands.items():
        stack.replication[name] = ManagedProcess(
            _manage(service, command),
            env=stack.service_envs[service],
            cwd=SERVICES_DIR / service,
            name=name,
        ).start()
    # And the orders' recovery loop, as scripts/demo runs it.
    stack.replication["orders-recovery"] = ManagedProcess(
        _manage("orders", "recover_orders", "--every", "15"),
        env=stack.service_envs["orders"],
        cwd=SERVICES_DIR / "orders",
        name="orders-recovery",
    ).start()
    for name, proc in stack.replication.items():
        proc.wait_for("recovery started" if name == "orders-recovery" else "started on", 30)
