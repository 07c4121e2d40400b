"""The monolith's ASGI application: the orders HTTP API alone (no workers to start)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monolith_project.settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()
