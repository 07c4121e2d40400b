"""Test models for servicebus.outbox: a source model and its replica in one app."""

from django.apps import AppConfig


class OutboxTestAppConfig(AppConfig):
    name = "tests.integration.outbox.testapp"
    label = "outbox_testapp"
    default_auto_field = "django.db.models.BigAutoField"
