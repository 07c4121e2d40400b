"""Settings with every kind of mistake the system checks catch (used by a subprocess test)."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = ["channels", "servicebus", "django.contrib.contenttypes"]
SERVICEBUS = {"SERVICE_NAME": "orders", "DEFAULT_TIMEOUT": "five", "CHANNEL_LAYR": "bus"}
