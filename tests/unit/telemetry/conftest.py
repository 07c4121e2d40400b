"""Telemetry unit tests: Django set up (checks and commands need the app registry)."""

import django
from django.apps import apps

if not apps.ready:
    django.setup()


import pytest

from servicebus.telemetry import labels


@pytest.fixture(autouse=True)
def fresh_labels():
    """Each test starts with no admitted label values (the caps are process-wide)."""
    for label_set in (labels.methods, labels.codes, labels.reasons):
        label_set.clear()
    yield
    for label_set in (labels.methods, labels.codes, labels.reasons):
        label_set.clear()
