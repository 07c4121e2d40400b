"""What the settings of every worker project that a test or benchmark starts share.

Those settings modules (tests/chaos/project, tests/integration/cluster/project,
benchmarks/project, benchmarks/scale_project) begin with
``from tests.support.worker_settings import *`` and add their own ASGI application,
channel layer and SERVICEBUS settings.
"""

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
# servicebus before channels: its runworker replaces channels' one.
INSTALLED_APPS = ["servicebus", "channels"]
DATABASES: dict[str, dict[str, str]] = {}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    # Warnings only: an outage or failover makes every retry log a line.
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    # Whoever starts a worker waits for its "worker serving" line (and reads "draining").
    "loggers": {"servicebus.worker": {"level": "INFO"}},
}
