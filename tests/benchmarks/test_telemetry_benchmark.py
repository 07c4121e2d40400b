"""benchmarks.telemetry runs end to end (one short round of two modes), so it cannot rot."""

from __future__ import annotations

import re

import pytest

from tests.support.processes import run_benchmark

pytestmark = pytest.mark.redis


def test_telemetry_benchmark_prints_the_issue_8_ratio() -> None:
    args = ["--modes", "hooks,metrics", "--rounds", "1", "--duration", "0.5", "--warmup", "0.2"]
    done = run_benchmark("telemetry", "--sample-ratio", "0.01", *args, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    rounds = [line for line in done.stdout.splitlines() if line.startswith("round 1 ")]
    assert len(rounds) == 2 and not any("errors=" in line for line in rounds), done.stdout
    verdict = re.search(
        r"issue 8: metrics / hooks = ([0-9.]+) calls/s, ([0-9.]+) CPU-bound", done.stdout
    )
    assert verdict is not None, done.stdout
    # Both ratios measured (a broken mode would give 0 calls or no CPU figure).
    assert 0 < float(verdict.group(1)) < 10 and 0 < float(verdict.group(2)) < 10
    assert "sampling 0.01" in done.stdout
