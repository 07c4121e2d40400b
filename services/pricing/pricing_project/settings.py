"""Settings for the pricing service: quotes, discounts and payments, on ``pricing.request``.

Configured from the environment (twelve-factor): DATABASE_URL, REDIS_URL,
SERVICEBUS_LAYER_BACKEND, CHANNEL_CAPACITY, OUTBOX_PUBLISH_ON_COMMIT, DJANGO_SECRET_KEY,
DJANGO_DEBUG.
"""

import os
from pathlib import Path

from servicebus import environ

BASE_DIR = Path(__file__).resolve().parent.parent


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "pricing-insecure-dev-key")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# servicebus before channels: its runworker (concurrent, draining) replaces channels' one.
INSTALLED_APPS = ["servicebus", "servicebus.outbox", "channels", "pricing"]
ASGI_APPLICATION = "pricing_project.asgi.application"

DATABASES = {
    "default": environ.database_from_url(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'pricing.sqlite3'}")
    )
}

CHANNEL_LAYERS = environ.channel_layers()
SERVICEBUS = {"SERVICE_NAME": "pricing", "RECEIVE_POLL": 0.5}
# Durable events (replication of inventory's products) on the same Redis: streams and
# channels use different keys. The consumer group is SERVICE_NAME.
SERVICEBUS_OUTBOX = {
    "REDIS_URL": environ.redis_url(),
    # 0: events wait in the outbox for servicebus_relay (no publish right after commit).
    "PUBLISH_ON_COMMIT": os.environ.get("OUTBOX_PUBLISH_ON_COMMIT", "1") != "0",
}

# Every line carries the correlation ID of the request it was logged for.
LOGGING = environ.logging_config("pricing")
