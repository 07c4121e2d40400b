"""Unit tests of servicebus.outbox: pure logic, no Redis, no database queries."""

import django
from django.apps import apps

# Some modules under test define or import Django models; the root conftest chose settings.
if not apps.ready:
    django.setup()
