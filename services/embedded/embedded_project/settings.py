"""The embedded mode: inventory, pricing and orders in one process, no Redis.

The same service code as the separate projects; only these settings differ: the three
apps side by side, each on its own database (a router keeps them apart), and the
in-memory channel layer, whose workers run in-process (see asgi.py). The apps must be
importable: PYTHONPATH=services/inventory:services/pricing:services/orders (plus the
repository root when servicebus is not installed).
"""

import os
from pathlib import Path

from servicebus import environ

# Each service's app package lives in its own project directory: PYTHONPATH names them
# (services/inventory, services/pricing, services/orders; scripts/demo sets it).
BASE_DIR = Path(__file__).resolve().parent.parent

DATA_DIR = Path(os.environ.get("EMBEDDED_DATA_DIR", BASE_DIR))


def sqlite(name: str) -> dict:
    """A SQLite database in DATA_DIR, safe for concurrent handler threads."""
    return environ.database_from_url(f"sqlite:///{DATA_DIR / f'{name}.sqlite3'}")


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "embedded-insecure-dev-key")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# embedded_project first: its load_sample_data (all three services) wins.
INSTALLED_APPS = [
    "embedded_project",
    "servicebus",
    "servicebus.outbox",
    "channels",
    "inventory",
    "pricing",
    "orders",
]
ASGI_APPLICATION = "embedded_project.asgi.application"
ROOT_URLCONF = "orders.urls"
MIDDLEWARE: list[str] = []
TEMPLATES: list[dict] = []
ORDERS_CALL_TIMEOUT = float(os.environ.get("ORDERS_CALL_TIMEOUT", "5"))
ORDERS_RECOVER_AFTER = float(os.environ.get("ORDERS_RECOVER_AFTER", "120"))

DATABASES = {
    "default": sqlite("orders"),
    "inventory": sqlite("inventory"),
    "pricing": sqlite("pricing"),
}
DATABASE_ROUTERS = ["embedded_project.routers.ServiceDatabaseRouter"]

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels.layers.InMemoryChannelLayer",
        "CONFIG": {"capacity": int(os.environ.get("CHANNEL_CAPACITY", "100"))},
    }
}
SERVICEBUS = {"SERVICE_NAME": "orders", "RECEIVE_POLL": 0.5}
# No Redis here: inventory's events stay in its outbox table, unpublished. The replicas
# are copied in-process instead (dump and load, see replication.py).
SERVICEBUS_OUTBOX = {"PUBLISH_ON_COMMIT": False}

# One stream for all services: the logger name (inventory, pricing, orders.saga...)
# says which one speaks.
LOGGING = environ.logging_config("embedded")
