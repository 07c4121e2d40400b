"""Settings for the benchmark's worker process (an echo service)."""

import os

from tests.support.worker_settings import *  # noqa: F403

ASGI_APPLICATION = "benchmarks.project.asgi.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": os.environ.get("BENCH_LAYER", "servicebus.layers.RedisChannelLayer"),
        "CONFIG": {
            "hosts": [os.environ["BENCH_REDIS_URL"]],
            "capacity": 2000,
            "max_batch": int(os.environ.get("BENCH_MAX_BATCH", "64")),
            "drain_batch": int(os.environ.get("BENCH_DRAIN_BATCH", "64")),
        },
    }
}
SERVICEBUS = {
    "SERVICE_NAME": "bench",
    "WORKER_CONCURRENCY": 256,
    "MAX_BODY_SIZE": 4 * 1024 * 1024,
    # SERVICEBUS_SIGNING_KEYS="k1,k2" measures signed envelopes (docs/security.md).
    "SIGNING_KEYS": [k for k in os.environ.get("SERVICEBUS_SIGNING_KEYS", "").split(",") if k],
}
if "BENCH_WORKER_BATCH" in os.environ:  # else the library's default (conf.py)
    SERVICEBUS["WORKER_BATCH"] = int(os.environ["BENCH_WORKER_BATCH"])
