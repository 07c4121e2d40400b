"""Settings for the orders service: the order saga, its HTTP API and ``orders.request``.

Configured from the environment (twelve-factor): DATABASE_URL, REDIS_URL,
SERVICEBUS_LAYER_BACKEND, CHANNEL_CAPACITY, OUTBOX_PUBLISH_ON_COMMIT, DJANGO_SECRET_KEY,
DJANGO_DEBUG, DJANGO_ALLOWED_HOSTS, ORDERS_CALL_TIMEOUT, ORDERS_RECOVER_AFTER.
"""

import os
from pathlib import Path

from servicebus import environ

BASE_DIR = Path(__file__).resolve().parent.parent


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "orders-insecure-dev-key")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# servicebus before channels: its runworker (concurrent, draining) replaces channels' one.
# The bus dashboard (/bus/) is staff-only: Django's auth and sessions log staff in.
INSTALLED_APPS = [
    "servicebus",
    "servicebus.outbox",
    "channels",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "servicebus.dashboard",
    "orders",
]
ASGI_APPLICATION = "orders_project.asgi.application"
ROOT_URLCONF = "orders.urls"
# A JSON API without CSRF or templates; sessions and auth only under the dashboard's
# mount, for its staff login (the dashboard checks CSRF on its own forms and ships its own
# templates). Django's two middlewares on every request cost each order three thread
# hand-offs under daphne (~0.8 ms of CPU, benchmarks.orders).
MIDDLEWARE = ["servicebus.dashboard.middleware.DashboardAuthMiddleware"]
TEMPLATES: list[dict] = []

# Seconds each saga step waits for its service before the order fails with "timeout".
ORDERS_CALL_TIMEOUT = float(os.environ.get("ORDERS_CALL_TIMEOUT", "5"))
# Seconds an order may stay pending before ``recover_orders`` finishes or undoes it: longer
# than a saga can take (four steps and their undos, each within ORDERS_CALL_TIMEOUT).
ORDERS_RECOVER_AFTER = float(os.environ.get("ORDERS_RECOVER_AFTER", "120"))

DATABASES = {
    "default": environ.database_from_url(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'orders.sqlite3'}")
    )
}

CHANNEL_LAYERS = environ.channel_layers()
SERVICEBUS = {"SERVICE_NAME": "orders", "RECEIVE_POLL": 0.5}
# Durable events (replication of inventory's products) on the same Redis: streams and
# channels use different keys. The consumer group is SERVICE_NAME.
SERVICEBUS_OUTBOX = {
    "REDIS_URL": environ.redis_url(),
    # 0: events wait in the outbox for servicebus_relay (no publish right after commit).
    "PUBLISH_ON_COMMIT": os.environ.get("OUTBOX_PUBLISH_ON_COMMIT", "1") != "0",
}

# Every line carries the correlation ID of the request it was logged for.
LOGGING = environ.logging_config("orders")
