"""The example services as real processes: three runworkers and daphne, over HTTP."""

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.support.processes import ROOT, ManagedProcess
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

    def lines(self, service: str) -> list[str]:
        return list(self.workers[service].lines)

    def crashes(self) -> list[str]:
        """Traceback lines any process logged: expected failures never log one."""
        procs = [p for p in [self.web, *self.workers.values()] if p is not None]
        return [f"{p.name}: {line}" for p in procs for line in p.lines if "Traceback" in line]

    def stop(self) -> None:
        procs = [p for p in [self.web, *self.workers.values()] if p is not None]
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
) -> Stack:
    """Migrate and seed each service's database, start the workers and daphne.

    Databases are SQLite files in ``data_dir`` unless ``database_urls`` names others.
    """
    env = {
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": urlunsplit(urlsplit(redis_url)._replace(path=f"/{next(_redis_dbs)}")),
        "CHANNEL_CAPACITY": str(capacity),
        "ORDERS_CALL_TIMEOUT": str(call_timeout),
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
    try:
        for service in SERVICES:
            stack.workers[service] = ManagedProcess(
                _manage(service, "runworker", f"{service}.request", "--concurrency", "64"),
                env=service_env(service),
                cwd=SERVICES_DIR / service,
                name=f"{service}-worker",
            ).start()
        stack.web = ManagedProcess(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(stack.port),
                "orders_project.asgi:application",
            ],
            env=service_env("orders"),
            cwd=SERVICES_DIR / "orders",
            name="daphne",
        ).start()
        for proc in stack.workers.values():
            proc.wait_for("worker serving", timeout=30)
        stack.web.wait_for("Listening on TCP address", timeout=30)
    except BaseException:
        stack.stop()
        raise
    return stack
