"""Dashboard integration fixtures: staff clients over a real Redis."""

from __future__ import annotations

from typing import Any

import django
import pytest
from django.apps import apps

if not apps.ready:
    django.setup()

from django.test import Client

from servicebus.dashboard import data


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def no_cache() -> None:
    data.clear_cache()


@pytest.fixture
def staff_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("ops", password="pw", is_staff=True)


@pytest.fixture
def staff_client(staff_user: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    return client


@pytest.fixture
def plain_client(django_user_model: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_user("dev", password="pw"))
    return client


@pytest.fixture
def outbox_redis(settings: Any, redis_flushed: str) -> str:
    """The outbox's event streams on the test session's Redis (emptied)."""
    settings.SERVICEBUS_OUTBOX = {"REDIS_URL": redis_flushed}
    return redis_flushed
