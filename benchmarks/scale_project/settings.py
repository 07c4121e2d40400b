"""Settings of the scaling benchmark's worker processes (echo services, one per channel).

SCALE_BENCH_CONFIG: the channel layer's CONFIG as JSON (one Redis, or cluster seeds);
SCALE_BENCH_CHANNELS: the request channels this worker serves, comma-separated;
SCALE_BENCH_TELEMETRY: "0" turns the default telemetry hooks off.
"""

import json
import os

from tests.support.worker_settings import *  # noqa: F403

ASGI_APPLICATION = "benchmarks.scale_project.asgi.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "servicebus.layers.RedisChannelLayer",
        "CONFIG": json.loads(os.environ.get("SCALE_BENCH_CONFIG", "{}")),
    }
}
SERVICEBUS = {
    "SERVICE_NAME": "scale-bench",
    "WORKER_CONCURRENCY": 256,
    "WORKER_BATCH": 16,
    # SCALE_BENCH_TELEMETRY=0: without the default telemetry hooks (metrics, call records).
    "TELEMETRY": os.environ.get("SCALE_BENCH_TELEMETRY", "1") == "1",
}
