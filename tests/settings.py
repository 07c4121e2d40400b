"""Django settings for the library's own tests (in-memory layer by default)."""

import os

from tests.support import postgres

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "servicebus",
    "django.contrib.contenttypes",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
SERVICEBUS = {"SERVICE_NAME": "tests"}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# --- servicebus.outbox tests (durable events): the app, its test models, and a Postgres
# alias "pg" when one answers on 127.0.0.1:5432 (tests that need it skip otherwise).
INSTALLED_APPS += ["servicebus.outbox", "tests.integration.outbox.testapp"]

if postgres.postgres_answers():
    DATABASES["pg"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": postgres.HOST,
        "PORT": str(postgres.PORT),
        "NAME": "test",
        "USER": "postgres",
        # One test database per run: test runs of several checkouts may share this server.
        "TEST": {"NAME": f"servicebus_test_outbox_{os.getpid()}"},
    }

# --- servicebus.dashboard tests: staff login needs auth, sessions and their middleware.
INSTALLED_APPS += ["django.contrib.auth", "django.contrib.sessions", "servicebus.dashboard"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.unit.dashboard.urls"  # mounts the dashboard at /bus/
