"""Run the example services locally and place a sample order (``scripts/demo``).

Redis mode: a Redis (REDIS_URL, else one answering on 127.0.0.1:6379, else a private
redis-server on a free port), three ``runworker`` processes and daphne for the orders
HTTP API, plus replication of inventory's products: an initial
``servicebus_dump | servicebus_load`` into pricing and orders, then inventory's
``servicebus_relay`` and a ``servicebus_consume`` per service carry every later change;
``recover_orders --every 15`` finishes or undoes orders a crash left pending.
Embedded mode (``--embedded``, or when no Redis can be had): the same services in one
daphne process on the in-memory channel layer, replicas copied in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES_DIR = ROOT / "services"
SERVICES = ("inventory", "pricing", "orders")
PYTHON = sys.executable
# What the demo prints under "Operate it" (Redis mode): commands and metrics URLs.
OPERATE: list[str] = []
SAMPLE_ORDER = {
    "items": [{"sku": "MUG-01", "qty": 5}, {"sku": "STK-01", "qty": 2}],
    "card_number": "4242424242424242",
}


def main() -> int:
    """Start the services, place the sample order, then wait for Ctrl-C (or exit)."""
    args = parse_args()
    data_dir = Path(args.data_dir).resolve()
    shutil.rmtree(data_dir, ignore_errors=True)  # a fresh, reproducible demo each run
    (data_dir / "logs").mkdir(parents=True)
    port = args.port or (8000 if port_is_free(8000) else free_port())
    with Processes(data_dir / "logs") as procs:
        # Ctrl-C and SIGTERM both end in the `with` exit, which stops every child (SIGINT
        # explicitly: a shell starting us in the background would have it ignored).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        redis_url = None if args.embedded else find_or_start_redis(procs, args.redis_url)
        staff = None
        if redis_url is None:
            start_embedded(procs, data_dir, port)
        else:
            staff = start_over_redis(procs, data_dir, port, redis_url)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, procs, timeout=60)
        order = place_sample_order(base, procs)
        if staff is not None:
            print(f"\nBus dashboard: {base}/bus/  (staff login: {staff[0]} / {staff[1]})")
            print(f"  the sample order's trace: {base}/bus/traces/{order.get('correlation_id')}")
            print("\nOperate it:")
            print(f"  orders (HTTP edge) metrics: {base}/metrics")
            print("\n".join(OPERATE))
        if args.once:
            return 0 if order.get("status") == "confirmed" else 1
        print(f"\nRunning at {base} (logs in {data_dir / 'logs'}). Try:")
        print(f"  curl {base}/products")
        print(
            f"  curl -X POST {base}/orders -H 'Content-Type: application/json' "
            "-H 'X-Feature-Flags: bulk_discount' "
            f"-d '{json.dumps(SAMPLE_ORDER)}'"
        )
        print("Ctrl-C stops everything.")
        with contextlib.suppress(KeyboardInterrupt):
            while procs.all_alive():
                time.sleep(0.5)
            print("a process exited; stopping the others", file=sys.stderr)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="place the order and exit")
    parser.add_argument(
        "--embedded", action="store_true", help="one process, in-memory layer, no Redis"
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--port", type=int, default=0, help="HTTP port (default 8000 or free)")
    parser.add_argument("--data-dir", default=str(ROOT / ".run" / "demo"))
    return parser.parse_args()


class Processes:
    """Children started by the demo, each logging to its own file; all stopped on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the child
        # A session of its own: Ctrl-C reaches the demo only, which stops children in order.
        self.running[name] = subprocess.Popen(
            args,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        print(f"started {name} (pid {self.running[name].pid})")

    def all_alive(self) -> bool:
        return all(proc.poll() is None for proc in self.running.values())

    def check_alive(self) -> None:
        for name, proc in self.running.items():
            if proc.poll() is not None:
                log = (self.log_dir / f"{name}.log").read_text(errors="replace")
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{log[-3000:]}")

    def log_lines(self, text: str) -> Iterator[tuple[str, str]]:
        """(process, line) for every log line containing ``text``."""
        for name in self.running:
            for line in (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines():
                if text in line:
                    yield name, line

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        # Newest first: the HTTP server before the workers, Redis last.
        for proc in reversed(self.running.values()):
            if proc.poll() is None:
                proc.terminate()
        for name, proc in reversed(self.running.items()):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in 15s; killing it", file=sys.stderr)
                proc.kill()
                proc.wait()
        if self.running:
            print(f"stopped {', '.join(self.running)}")


def find_or_start_redis(procs: Processes, url: str | None) -> str | None:
    """A Redis URL to use, or None when there is none to be had (embedded mode)."""
    if url:
        return url
    if redis_answers("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    exe = shutil.which("redis-server")
    if exe is None:
        print("no Redis on 127.0.0.1:6379 and no redis-server binary: embedded mode")
        return None
    port = free_port()
    procs.start(
        "redis",
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=procs.log_dir,
        env={},
    )
    deadline = time.monotonic() + 10
    while not redis_answers("127.0.0.1", port):
        procs.check_alive()
        if time.monotonic() > deadline:
            raise SystemExit(f"redis-server on port {port} did not answer in 10s")
        time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0"


def start_over_redis(
    procs: Processes, data_dir: Path, port: int, redis_url: str
) -> tuple[str, str]:
    """Each service as its own project: migrate, sample data, runworker; daphne for orders.

    Returns the staff login (user, password) created for the bus dashboard at /bus/.
    """
    print(f"Redis mode: {redis_url}")
    envs = {
        service: {
            "DJANGO_SETTINGS_MODULE": f"{service}_project.settings",
            # The shop's shared contract (shop_contracts) lives in services/contracts.
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(SERVICES_DIR / "contracts")]),
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{data_dir / f'{service}.sqlite3'}",
        }
        for service in SERVICES
    }

    def prepare(service: str) -> None:
        for command in (["migrate", "-v0"], ["load_sample_data"]):
            manage(service, command, envs[service])

    with ThreadPoolExecutor(len(SERVICES)) as pool:  # three databases, side by side
        list(pool.map(prepare, SERVICES))
    # A staff login for the dashboard that orders serves: a fresh password every run.
    staff = ("demo", secrets.token_urlsafe(9))
    manage(
        "orders",
        ["createsuperuser", "--noinput", "--username", staff[0], "--email", "demo@localhost"],
        {**envs["orders"], "DJANGO_SUPERUSER_PASSWORD": staff[1]},
    )
    # The initial copy of inventory's products into the replicas (the documented path:
    # loading applies revisions, so the same events arriving later change nothing).
    dump = data_dir / "inventory-products.jsonl"
    manage("inventory", ["servicebus_dump", "inventory.Product"], envs["inventory"], stdout=dump)

    def load(service: str) -> None:
        manage(
            service, ["servicebus_load", f"{service}.Product", "--file", str(dump)], envs[service]
        )

    with ThreadPoolExecutor(2) as pool:  # both replicas at once
        list(pool.map(load, ("pricing", "orders")))
    # Durable events: inventory's relay publishes what on-commit publishing missed; each
    # service's consumer applies them (inventory's answers servicebus_diff re-sync requests).
    procs.start(
        "inventory-relay",
        [PYTHON, "manage.py", "servicebus_relay"],
        cwd=SERVICES_DIR / "inventory",
        env=envs["inventory"],
    )
    for service in SERVICES:
        procs.start(
            f"{service}-consumer",
            [PYTHON, "manage.py", "servicebus_consume"],
            cwd=SERVICES_DIR / service,
            env=envs[service],
        )
    for service in SERVICES:
        metrics_port = free_port()  # each runworker serves its Prometheus series here
        procs.start(
            f"{service}-worker",
            [
                PYTHON,
                "manage.py",
                "runworker",
                f"{service}.request",
                "--metrics-port",
                f"127.0.0.1:{metrics_port}",
            ],
            cwd=SERVICES_DIR / service,
            env=envs[service],
        )
        OPERATE.append(f"  {service} worker metrics: http://127.0.0.1:{metrics_port}/metrics")
    env_words = " ".join(f"{k}={v}" for k, v in envs["orders"].items())
    OPERATE.insert(
        0,
        "  every service, its instances, backlog and latency:\n"
        f"    cd {SERVICES_DIR / 'orders'} && {env_words} {PYTHON} manage.py servicebus_status",
    )
    procs.start(
        "orders-http", daphne(port, "orders_project"), SERVICES_DIR / "orders", envs["orders"]
    )
    # Finishes or undoes orders a crash of orders-http left pending (orders/recovery.py).
    procs.start(
        "orders-recovery",
        [PYTHON, "manage.py", "recover_orders", "--every", "15"],
        cwd=SERVICES_DIR / "orders",
        env=envs["orders"],
    )
    return staff


def start_embedded(procs: Processes, data_dir: Path, port: int) -> None:
    """All three services in one daphne process, on the in-memory layer."""
    print("Embedded mode: one process, in-memory channel layer")
    env = {
        "DJANGO_SETTINGS_MODULE": "embedded_project.settings",
        # The three apps live in their services' directories (the settings no longer
        # edit sys.path).
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *(str(SERVICES_DIR / s) for s in (*SERVICES, "contracts"))]
        ),
        "EMBEDDED_DATA_DIR": str(data_dir),
    }
    manage("embedded", ["setup_services"], env)
    procs.start("embedded", daphne(port, "embedded_project"), SERVICES_DIR / "embedded", env)


def manage(
    service: str, command: list[str], env: dict[str, str], stdout: Path | None = None
) -> None:
    """Run a management command of a service to completion (its output to ``stdout``)."""
    with open(stdout, "wb") if stdout else contextlib.nullcontext() as out:
        subprocess.run(
            [PYTHON, "manage.py", *command],
            cwd=SERVICES_DIR / service,
            env={**os.environ, **env},
            stdout=out,
            check=True,
            timeout=120,
        )


def daphne(port: int, project: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "daphne",
        # No access log: the edge logs every request with its correlation ID.
        "-v",
        "0",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        f"{project}.asgi:application",
    ]


def wait_healthy(base: str, procs: Processes, timeout: float) -> None:
    """Poll GET /health until every check passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            status, body = http("GET", f"{base}/health")
            if status == 200:
                print(f"healthy: {body['checks']}")
                return
            last = body
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise SystemExit(f"not healthy after {timeout}s: {last}")


def place_sample_order(base: str, procs: Processes) -> dict:
    """POST the sample order and print it, its saga log and every log line it caused."""
    cid = f"demo-{uuid.uuid4().hex[:12]}"
    print(f"\nPOST {base}/orders  X-Request-ID: {cid}  X-Feature-Flags: bulk_discount")
    print(f"  {json.dumps(SAMPLE_ORDER)}")
    status, body = http(
        "POST",
        f"{base}/orders",
        SAMPLE_ORDER,
        {"X-Request-ID": cid, "X-Feature-Flags": "bulk_discount"},
    )
    order = body.get("order", {})
    print(f"\n-> HTTP {status}: order {order.get('id')} is {order.get('status')}")
    if order.get("total_cents") is not None:
        print(
            f"   subtotal {order['subtotal_cents'] / 100:.2f}, discount "
            f"{order['discount_cents'] / 100:.2f}, total {order['total_cents'] / 100:.2f} "
            f"{order['currency']}"
        )
    if order.get("failure_code"):
        print(f"   failed: {order['failure_code']}: {order['failure_message']}")
    print(f"   correlation id: {order.get('correlation_id')}")
    print("\nCalls the order made (its saga log):")
    for entry in order.get("saga_log", []):
        print(f"  {entry['step']:<20} {entry['call']:<20} {entry['outcome']:<12} {entry['ms']} ms")
    time.sleep(0.3)  # let the services flush their last lines
    print(f"\nLog lines with correlation id {cid}, from every process:")
    for name, line in procs.log_lines(cid):
        print(f"  {name:<16} {line}")
    return order


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None):
    """(status, JSON body) of one request; HTTP errors are answers too."""
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def redis_answers(host: str, port: int) -> bool:
    """True when a Redis answers PING on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
