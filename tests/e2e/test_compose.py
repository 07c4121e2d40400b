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
