"""benchmarks.duplicates: the bounded run in CI, and its checks catch what they claim to."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from benchmarks.duplicates import Run, check
from tests.support.processes import run_benchmark

NAMES = ["worker-0", "worker-1"]


def run_quick(*args: str) -> dict:
    done = run_benchmark("duplicates", "--quick", "--json", *args, timeout=100)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return summary


def test_quick_run_executes_every_call_once_and_every_worker_answers():
    summary = run_quick()
    assert summary["ok"] == summary["calls"] == 3000
    assert summary["executed_twice"] == summary["misrouted"] == 0
    assert summary["queue_left_before_stop"] == 0
    assert set(summary["answered_by"]) == {"worker-0", "worker-1", "worker-2"}


def test_quick_run_with_a_sigkilled_worker_loses_only_what_it_held():
    summary = run_quick("--kill")
    assert summary["killed"] == "worker-0"
    assert summary["executed_twice"] == summary["misrouted"] == 0
    assert set(summary["errors"]) <= {"CallTimeout"}
    lost = summary["calls"] - summary["ok"]
    assert lost == summary["lost_never_executed"] + summary["lost_executed_no_reply"]
    assert lost <= 64  # at most what was in flight
    assert summary["calls_after_kill"] > 0
    assert summary["calls_after_kill_ok"] == summary["calls_after_kill"]


def clean_run() -> tuple[Run, dict[str, int]]:
    run = Run(keys=["a", "b", "c", "d"])
    for i, key in enumerate(run.keys):
        run.outcome[key], run.started[key] = "ok", float(i)
        run.answered_by[NAMES[i % 2]] += 1
    return run, dict.fromkeys(run.keys, 1)


def test_checks_pass_a_clean_run():
    run, counts = clean_run()
    assert check(run, counts, NAMES, left=0, inflight=4)["problems"] == []


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("twice", "executed twice"),
        ("misrouted", "wrong call"),
        ("queued", "still queued"),
        ("silent-worker", "never answered"),
        ("timeout-without-fault", "without a fault"),
        ("answered-not-run", "not executed exactly once"),
    ],
)
def test_checks_catch_each_fault(fault, problem):
    run, counts = clean_run()
    left = 0
    if fault == "twice":
        counts["a"] = 2
    elif fault == "misrouted":
        run.misrouted = 1
    elif fault == "queued":
        left = 3
    elif fault == "silent-worker":
        run.answered_by = Counter({"worker-0": 4})
    elif fault == "timeout-without-fault":
        run.outcome["a"], counts["a"] = "CallTimeout", 0
    elif fault == "answered-not-run":
        counts["b"] = 0
    problems = check(run, counts, NAMES, left=left, inflight=4)["problems"]
    assert any(problem in p for p in problems), problems


def test_kill_checks_catch_a_failed_call_after_the_kill_and_other_errors():
    run, counts = clean_run()
    run.killed, run.killed_at = "worker-1", 1.5  # c and d started after the kill
    run.outcome["d"] = "CallTimeout"
    problems = check(run, counts, NAMES, left=0, inflight=4)["problems"]
    assert any("after the kill" in p for p in problems)
    run.outcome["d"] = "BusUnavailable"
    problems = check(run, counts, NAMES, left=0, inflight=4)["problems"]
    assert any("other than CallTimeout" in p for p in problems)
