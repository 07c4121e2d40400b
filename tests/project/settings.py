"""Django settings for the worker processes the integration and e2e tests start.

SB_REDIS_URL points at the test's private Redis; SB_LAYER picks the layer backend
("servicebus", the default, or "stock" for channels_redis's own layer).
"""

import json
import os

from servicebus import environ

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
# servicebus before channels: its runworker replaces channels' one.
INSTALLED_APPS = ["servicebus", "channels", "django.contrib.contenttypes"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ASGI_APPLICATION = "tests.project.asgi.application"

_BACKENDS = {
    "servicebus": "servicebus.layers.RedisChannelLayer",
    "stock": "channels_redis.core.RedisChannelLayer",
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": _BACKENDS[os.environ.get("SB_LAYER", "servicebus")],
        "CONFIG": {
            "hosts": [os.environ.get("SB_REDIS_URL", "redis://127.0.0.1:6379/0")],
            "capacity": int(os.environ.get("SB_CAPACITY", "100")),
            "channel_capacity": json.loads(os.environ.get("SB_CHANNEL_CAPACITY", "{}")),
        },
    }
}
SERVICEBUS = {
    "SERVICE_NAME": os.environ.get("SB_SERVICE_NAME", "testworker"),
    "RECEIVE_POLL": 0.2,
    # SERVICEBUS_SIGNING_KEYS="new,old" for the signing tests.
    "SIGNING_KEYS": environ.signing_keys(),
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"cid": {"()": "servicebus.context.CorrelationIdFilter"}},
    "formatters": {"plain": {"format": "%(levelname)s %(name)s [%(correlation_id)s] %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["cid"],
        }
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
