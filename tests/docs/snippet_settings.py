"""Settings for running documentation snippets: the tests' settings, in-memory bus.

The database is a file (``SERVICEBUS_SNIPPET_DB``) so that sync handlers, which run in
threads, see the tables the page created; no block ever reaches a Redis.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS

# The apps of a new project (django-admin startproject), which pages may assume.
STARTPROJECT_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
INSTALLED_APPS = [
    *INSTALLED_APPS,
    *(app for app in STARTPROJECT_APPS if app not in INSTALLED_APPS),
    "tests.docs.snippet_app",
]
DATABASES = {
    **DATABASES,
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SERVICEBUS_SNIPPET_DB", ":memory:"),
    },
}
# Events stay in the outbox table: publishing would need a Redis.
SERVICEBUS_OUTBOX = {"PUBLISH_ON_COMMIT": False, "REDIS_URL": "redis://127.0.0.1:9/0"}
