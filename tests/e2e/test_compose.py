"""docker-compose.yml is valid (checked by docker-compose itself; no Docker engine needed)."""

from __future__ import annotations

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
    for command in ("runworker inventory.request", "runworker pricing.request"):
        assert command in text
    assert '"runworker", "orders.request"' in text
    assert '"daphne"' in text
    assert (ROOT / "Dockerfile").is_file()
