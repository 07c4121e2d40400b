"""Settings of the worker processes the telemetry tests start (tests.project + telemetry).

SB_HEARTBEAT: heartbeat interval (s). SB_JSON_LOGS=1: JSON log lines. SB_SPANS_FILE: an
OpenTelemetry SDK provider that writes each finished span as one JSON line to that file.
"""

import os

from servicebus.environ import logging_config
from tests.project.settings import *  # noqa: F403
from tests.project.settings import SERVICEBUS as _BASE

SERVICEBUS = {**_BASE, "HEARTBEAT_INTERVAL": float(os.environ.get("SB_HEARTBEAT", "0.5"))}

if os.environ.get("SB_JSON_LOGS"):
    LOGGING = logging_config(SERVICEBUS["SERVICE_NAME"], {"LOG_LEVEL": "INFO"}, json=True)

if os.environ.get("SB_SPANS_FILE"):
    from tests.integration.telemetry.spans import install_file_exporter

    install_file_exporter(os.environ["SB_SPANS_FILE"])
