"""``python -m benchmarks.orders --quick`` runs end to end (the benchmark must not rot):
every setup places its orders and every valid order gets a 2xx. Figures are not checked
here (a shared machine); docs/benchmarks.md holds a full run."""

from __future__ import annotations

import pytest

from tests.support.processes import run_benchmark

pytestmark = pytest.mark.e2e


def test_the_order_flow_benchmark_runs_quick() -> None:
    result = run_benchmark("orders", "--quick", "--clients", "1,8", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "| redis-sqlite | 8 |" in out and "| monolith | 8 |" in out, out[-3000:]
    assert "non-2xx answers to valid orders, every cell: 0." in out, out[-3000:]
    # The ratios that hold as the machine's speed drifts, and that speed itself.
    assert "CPU per order, services ÷ monolith in this run: " in out, out[-3000:]
    assert "Machine speed at the start: " in out, out[-3000:]
