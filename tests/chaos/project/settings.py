"""Settings of the chaos suite's worker processes (service ``chaos``).

CHAOS_REDIS_URL: the test's private Redis; CHAOS_CAPACITY: the channel capacity;
CHAOS_RECORD_DIR: where ``record`` appends the keys it ran; CHAOS_WORKER_NAME: its name.
"""

import os

from tests.support.worker_settings import *  # noqa: F403
from tests.support.worker_settings import LOGGING

ASGI_APPLICATION = "tests.chaos.project.asgi.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "servicebus.layers.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("CHAOS_REDIS_URL", "redis://127.0.0.1:1/0")],
            "capacity": int(os.environ.get("CHAOS_CAPACITY", "1000")),
        },
    }
}
SERVICEBUS = {
    "SERVICE_NAME": os.environ.get("CHAOS_WORKER_NAME", "chaos"),
    "RECEIVE_POLL": 0.2,
    "DRAIN_TIMEOUT": 10.0,
}
LOGGING = {
    **LOGGING,
    # Thousands of malformed messages must not become thousands of tracebacks on a pipe.
    "filters": {"first": {"()": "tests.chaos.project.logfilter.FirstFew"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "filters": ["first"]},
    },
}
