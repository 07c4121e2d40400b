"""Django settings for outbox test subprocesses (relay, consumer, producer) — env-driven.

OUTBOX_TEST_DB is ``pg:<database name>`` or ``sqlite:<file path>``; SERVICEBUS_REDIS_URL
names the Redis; OUTBOX_TEST_SETTINGS is a JSON object merged into SERVICEBUS_OUTBOX.
"""

import json
import os

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "servicebus",
    "django.contrib.contenttypes",
    "servicebus.outbox",
    "tests.integration.outbox.testapp",
]
_kind, _, _name = os.environ.get("OUTBOX_TEST_DB", "sqlite:/tmp/outbox-test.sqlite3").partition(":")
if _kind == "pg":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "NAME": _name,
            "USER": "postgres",
            # Test data only: don't wait for the WAL flush on every commit.
            "OPTIONS": {"options": "-c synchronous_commit=off"},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _name,
            # Writers take the lock at BEGIN, so concurrent relays wait instead of failing.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
        }
    }
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
SERVICEBUS = {"SERVICE_NAME": "outbox-tests"}
SERVICEBUS_OUTBOX = json.loads(os.environ.get("OUTBOX_TEST_SETTINGS", "{}"))
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
# Start-up lines ("relay started", "consumer ... started") tell tests a process is ready.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"servicebus.outbox": {"handlers": ["stderr"], "level": "INFO"}},
}
