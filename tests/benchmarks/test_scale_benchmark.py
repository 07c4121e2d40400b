"""benchmarks.scale runs end to end (one short cell on a cluster), so it cannot rot.

Here, not under tests/integration: the benchmarks are not part of the wheel, and
scripts/check-wheel runs tests/integration against the installed wheel alone.
"""

from __future__ import annotations

import pytest

from tests.support.processes import run_benchmark

pytestmark = pytest.mark.redis


def test_scale_benchmark_smoke() -> None:
    args = ["--workers", "1", "--topologies", "cluster", "--duration", "0.5"]
    args += ["--callers", "1", "--inflight", "16"]
    done = run_benchmark("scale", *args, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| cluster"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "1"  # one worker process
    assert float(cells[2].replace(",", "")) > 0  # calls/s
    assert float(cells[3]) > 0  # Redis CPU per call was measured
    assert cells[-1] == "0"  # no errors
