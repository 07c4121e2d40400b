"""The example services' unit tests: all three apps in one process (the embedded mode's
settings: each app on its own SQLite database, the in-memory channel layer), with the
servicebus pytest plugin's fixtures (``stub_service``, ``servicebus_bus``,
``captured_events``).

    .venv/bin/python -m pytest services/tests -q      # (tests/e2e/test_service_units.py runs it)

Run them on their own, not in one pytest session with tests/: each sets its own
DJANGO_SETTINGS_MODULE.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SERVICES = Path(__file__).resolve().parent.parent
for directory in ("embedded", "inventory", "pricing", "orders", "contracts"):
    if str(SERVICES / directory) not in sys.path:
        sys.path.insert(0, str(SERVICES / directory))
if str(SERVICES.parent) not in sys.path:
    sys.path.insert(0, str(SERVICES.parent))

os.environ["DJANGO_SETTINGS_MODULE"] = "embedded_project.settings"
# Tests never wait for the replica refresher.
os.environ.setdefault("EMBEDDED_REPLICATION_INTERVAL", "0")

import django  # noqa: E402

# The test modules import the apps' models at the top: set Django up before they load.
django.setup()
