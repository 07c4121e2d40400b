"""The dashboard installed without Django's auth, sessions or their middleware."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = ["servicebus", "django.contrib.contenttypes", "servicebus.dashboard"]
MIDDLEWARE: list[str] = []
