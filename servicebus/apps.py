"""Django app config: ships ``manage.py runworker`` (listed before ``channels`` it wins)."""

from django.apps import AppConfig


class ServiceBusConfig(AppConfig):
    """The servicebus Django app."""

    name = "servicebus"
    verbose_name = "Service bus"

    def ready(self) -> None:
        from servicebus import checks  # noqa: F401  (registers the system checks)
        from servicebus.telemetry import install_defaults

        install_defaults()
