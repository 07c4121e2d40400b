"""Django settings for the library's own tests (in-memory layer by default)."""

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
