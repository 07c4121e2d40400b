"""``manage.py check`` says what the dashboard needs, with ids and hints, not a traceback."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT


def test_missing_auth_sessions_and_middleware_are_reported() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "check",
            "--settings",
            "tests.unit.dashboard.no_auth_settings",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    for problem in ("E001", "E003", "E004", "E005"):  # auth, sessions, their middleware
        assert f"servicebus_dashboard.{problem}" in result.stderr, result.stderr
    assert "servicebus_dashboard.E002" not in result.stderr  # contenttypes is there


def test_the_test_settings_pass() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "django", "check", "--settings", "tests.settings"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
