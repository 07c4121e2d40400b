"""docker-compose.yml is valid (checked by docker-compose itself; no Docker engine needed)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (.ci/run installs it: apt-get install docker-compose)",
)
def test_compose_file_is_valid() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_one_worker_per_service_and_daphne() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for service in ("inventory", "pricing", "orders"):
        assert f'"runworker", "{service}.request"' in text
    assert '"daphne"' in text
    assert (ROOT / "Dockerfile").is_file()


def compose_service(text: str, name: str) -> str:
    """The text of one service's block in docker-compose.yml (no YAML parser needed)."""
    match = re.search(rf"^  {re.escape(name)}:\n((?:    .*\n|\s*\n)+)", text, re.MULTILINE)
    assert match, f"no service {name}"
    return match.group(1)


def test_compose_runs_the_relay_and_a_consumer_per_service() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "servicebus_relay" in compose_service(text, "inventory-relay")
    assert "<<: *inventory" in compose_service(text, "inventory-relay")
    for service in ("inventory", "pricing", "orders"):
        block = compose_service(text, f"{service}-consumer")
        assert "servicebus_consume" in block and f"<<: *{service}" in block


LOOPS = {
    "inventory-relay": "servicebus_relay",
    "inventory-consumer": "servicebus_consume",
    "pricing-consumer": "servicebus_consume",
    "orders-consumer": "servicebus_consume",
    "orders-recovery": "recover_orders",
}
WORKERS = {"inventory": "inventory", "pricing": "pricing", "orders-worker": "orders"}


def resolved_services() -> dict[str, str]:
    """Each service's block of ``docker-compose config`` (anchors and merges resolved)."""
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    services = ("\n" + result.stdout).partition("\nservices:\n")[2].partition("\nvolumes:\n")[0]
    blocks = re.split(r"^  (?=[a-z][\w-]*:\n)", services, flags=re.MULTILINE)
    return {block.partition(":")[0]: block for block in blocks if block.strip()}


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)
def test_compose_checks_the_health_of_every_long_running_container() -> None:
    services = resolved_services()
    for name, service in WORKERS.items():
        check = services[name].partition("healthcheck:")[2]
        assert f"- /app/services/healthcheck.py\n      - worker\n      - {service}\n" in check, name
    for name, command in LOOPS.items():
        block = services[name]
        assert command in block.partition("healthcheck:")[0], name
        assert f"      - {command}\n" in block.partition("healthcheck:")[2], name
    assert "/health" in services["orders-http"].partition("healthcheck:")[2]
    one_shots = {"inventory-setup", "pricing-setup", "orders-migrate"}
    for name, block in services.items():
        if name not in one_shots:
            assert "healthcheck:" in block, f"{name} has no healthcheck"


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)
def test_compose_runs_the_services_on_postgresql() -> None:
    services = resolved_services()
    assert "pg_isready" in services["postgres"]
    for name, block in services.items():
        if "DATABASE_URL" in block:
            assert "DATABASE_URL: postgres://servicebus:servicebus@postgres:5432/" in block, name
            assert "postgres:\n        condition: service_healthy" in block, name
    text = (ROOT / "docker-compose.yml").read_text()
    assert "sqlite" not in text
    init = (ROOT / "services" / "compose" / "postgres-init.sql").read_text()
    for database in ("inventory", "pricing", "orders"):
        assert f"CREATE DATABASE {database};" in init
