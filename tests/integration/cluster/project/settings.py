"""Settings of the worker processes of the scaling tests (service ``scale``).

SCALE_LAYER_CONFIG: the channel layer's CONFIG as JSON (cluster seeds, a Sentinel host
entry, several plain hosts); SCALE_RECORD_DIR: where ``record`` appends the keys it
ran; SCALE_WORKER_NAME: this worker's name in its replies.
"""

import json
import os

SECRET_KEY = "scale-tests-only"
DEBUG = False
USE_TZ = True
# servicebus before channels: its runworker replaces channels' one.
INSTALLED_APPS = ["servicebus", "channels"]
DATABASES: dict[str, dict[str, str]] = {}
ASGI_APPLICATION = "tests.integration.cluster.project.asgi.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "servicebus.layers.RedisChannelLayer",
        "CONFIG": json.loads(os.environ.get("SCALE_LAYER_CONFIG", "{}")),
    }
}
SERVICEBUS = {"SERVICE_NAME": os.environ.get("SCALE_WORKER_NAME", "scale"), "RECEIVE_POLL": 0.2}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    # Warnings only: a failover makes every retry log a line.
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {"servicebus.worker": {"level": "INFO"}},
}
