"""System checks: what the dashboard needs from the project (ids servicebus_dashboard.*)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, register

REQUIRED_APPS = ("django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions")
REQUIRED_MIDDLEWARE = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
)
# Both of the above for the dashboard's paths only (servicebus/dashboard/middleware.py).
SCOPED_MIDDLEWARE = "servicebus.dashboard.middleware.DashboardAuthMiddleware"


@register(Tags.compatibility)
def check_dashboard_requirements(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Staff login needs Django's auth and sessions: their apps and middleware."""
    errors = []
    for number, app in enumerate(REQUIRED_APPS, start=1):
        if not apps.is_installed(app):
            errors.append(
                Error(
                    f"servicebus.dashboard needs {app!r} in INSTALLED_APPS.",
                    hint="The dashboard is staff-only: it logs users in with Django's auth.",
                    id=f"servicebus_dashboard.E00{number}",
                )
            )
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if SCOPED_MIDDLEWARE in middleware:
        return errors
    for number, name in enumerate(REQUIRED_MIDDLEWARE, start=len(REQUIRED_APPS) + 1):
        if name not in middleware:
            errors.append(
                Error(
                    f"servicebus.dashboard needs {name!r} in MIDDLEWARE.",
                    hint=(
                        "SessionMiddleware before AuthenticationMiddleware, or "
                        f"{SCOPED_MIDDLEWARE!r} for the dashboard's paths only "
                        "(docs/dashboard.md)."
                    ),
                    id=f"servicebus_dashboard.E00{number}",
                )
            )
    return errors
