"""pytest plugin for scripts/check-wheel: fail at once unless servicebus is the installed wheel.

Loaded with ``-p tests.docs.installed_guard``; ``SERVICEBUS_EXPECT_PREFIX`` is the
site-packages directory the wheel was installed into.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run when ``import servicebus`` finds anything but the installed wheel."""
    want = os.environ.get("SERVICEBUS_EXPECT_PREFIX")
    if not want:
        raise pytest.UsageError("installed_guard needs SERVICEBUS_EXPECT_PREFIX")
    import servicebus

    where = os.path.realpath(servicebus.__file__)
    if not where.startswith(os.path.realpath(want) + os.sep):
        raise pytest.UsageError(f"servicebus imported from {where}, not from {want}")
