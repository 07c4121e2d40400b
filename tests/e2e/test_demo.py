"""``scripts/demo --once`` places the sample order, over Redis and in embedded mode."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e


def run_demo(*args: str, env: dict[str, str], tmp_path) -> str:
    result = subprocess.run(
        [str(ROOT / "scripts" / "demo"), "--once", "--data-dir", str(tmp_path), *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def check_output(out: str) -> None:
    assert "-> HTTP 201" in out and "is confirmed" in out
    assert "discount 6.00" in out  # the bulk_discount feature flag reached pricing
    for call in ("inventory.allocate", "pricing.quote", "pricing.charge", "inventory.finalise"):
        assert call in out


def test_demo_over_redis(redis_url: str, tmp_path) -> None:
    out = run_demo(env={"REDIS_URL": redis_url}, tmp_path=tmp_path)
    assert "Redis mode" in out
    # How to see the bus: servicebus_status and every process's /metrics.
    assert "manage.py servicebus_status" in out
    assert out.count("/metrics") == 4
    check_output(out)
    # The correlation ID in the logs of every process.
    for process in ("inventory-worker", "pricing-worker", "orders-http"):
        assert f"  {process} " in out
    # Replication: the initial copy, then inventory's relay and a consumer per service.
    assert out.count("applied 4") == 2  # servicebus_load into pricing and orders
    for process in ("inventory-relay", "inventory-consumer", "pricing-consumer", "orders-consumer"):
        assert f"started {process} " in out
    assert "stopped" in out


def test_demo_embedded(tmp_path) -> None:
    out = run_demo("--embedded", env={}, tmp_path=tmp_path)
    assert "Embedded mode" in out
    check_output(out)
