"""Settings of the worker processes of the scaling tests (service ``scale``).

SCALE_LAYER_CONFIG: the channel layer's CONFIG as JSON (cluster seeds, a Sentinel host
entry, several plain hosts); SCALE_RECORD_DIR: where ``record`` appends the keys it
ran; SCALE_WORKER_NAME: this worker's name in its replies.
"""

import json
import os

from tests.support.worker_settings import *  # noqa: F403

ASGI_APPLICATION = "tests.integration.cluster.project.asgi.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "servicebus.layers.RedisChannelLayer",
        "CONFIG": json.loads(os.environ.get("SCALE_LAYER_CONFIG", "{}")),
    }
}
SERVICEBUS = {"SERVICE_NAME": os.environ.get("SCALE_WORKER_NAME", "scale"), "RECEIVE_POLL": 0.2}
