"""benchmarks.scale runs end to end (one short cell on a cluster), so it cannot rot.

Here, not under tests/integration: the benchmarks are not part of the wheel, and
scripts/check-wheel runs tests/integration against the installed wheel alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


def test_scale_benchmark_smoke() -> None:
    args = ["--workers", "1", "--topologies", "cluster", "--duration", "0.5"]
    args += ["--callers", "1", "--inflight", "16"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| cluster"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "1"  # one worker process
    assert float(cells[2].replace(",", "")) > 0  # calls/s
    assert float(cells[3]) > 0  # Redis CPU per call was measured
    assert cells[-1] == "0"  # no errors
