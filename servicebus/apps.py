"""Django app config: ships ``manage.py runworker`` (listed before ``channels`` it wins)."""

from django.apps import AppConfig


class ServiceBusConfig(AppConfig):
    """The servicebus Django app."""

    name = "servicebus"
    verbose_name = "Service bus"
