"""Django app config of the dashboard; registers its system checks."""

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The servicebus dashboard app (label ``servicebus_dashboard``)."""

    name = "servicebus.dashboard"
    label = "servicebus_dashboard"
    verbose_name = "Service bus dashboard"

    def ready(self) -> None:
        from servicebus.dashboard import checks  # noqa: F401  (registers the checks)
