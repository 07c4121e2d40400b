"""Telemetry unit tests: Django set up (checks and commands need the app registry)."""

import django
from django.apps import apps

if not apps.ready:
    django.setup()
