"""The example services' own unit tests (services/tests: in-process, in-memory bus, the
servicebus pytest plugin), run as a separate pytest session: they use their own settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.support.processes import ROOT


def test_the_example_services_unit_tests_pass() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "services/tests"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 9, result.stdout[-2000:]
