"""DashboardAuthMiddleware: sessions and auth under the dashboard's mount, nothing elsewhere."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import AsyncClient, Client, override_settings
from django.urls import clear_script_prefix, set_script_prefix

from servicebus.dashboard.checks import check_dashboard_requirements

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("scoped"),
]
SCOPED = "servicebus.dashboard.middleware.DashboardAuthMiddleware"


@pytest.fixture
def scoped() -> Any:
    with override_settings(MIDDLEWARE=[SCOPED], ROOT_URLCONF="tests.unit.dashboard.scoped_urls"):
        yield


def test_views_outside_the_dashboard_get_no_session_or_user() -> None:
    resp = Client().get("/api/whoami")
    assert resp.json() == {"session": False, "user": False}
    assert "sessionid" not in resp.cookies


async def test_on_the_async_path_too() -> None:
    resp = await AsyncClient().get("/api/whoami")
    assert resp.json() == {"session": False, "user": False}


def test_staff_log_in_and_see_the_dashboard(telemetry: Any, staff_user: Any) -> None:
    client = Client()
    assert client.get("/bus/failures")["Location"] == "/bus/login/?next=%2Fbus%2Ffailures"
    resp = client.post(
        "/bus/login/",
        {"username": "ops", "password": "pw-ops-1234", "next": "/bus/failures"},
    )
    assert (resp.status_code, resp["Location"]) == (302, "/bus/failures")
    assert client.get("/bus/failures").status_code == 200
    assert client.get("/api/whoami").json() == {"session": False, "user": False}


def test_under_the_mount_a_view_gets_both() -> None:
    assert Client().get("/bus/whoami").json() == {"session": True, "user": True}


async def test_under_the_mount_on_the_async_path_too() -> None:
    resp = await AsyncClient().get("/bus/whoami")
    assert resp.json() == {"session": True, "user": True}


def test_the_check_accepts_it_instead_of_djangos_two() -> None:
    assert check_dashboard_requirements() == []
    with override_settings(MIDDLEWARE=[]):
        ids = {error.id for error in check_dashboard_requirements()}
    assert ids == {"servicebus_dashboard.E004", "servicebus_dashboard.E005"}


def test_under_a_script_prefix_the_mount_includes_it() -> None:
    # As Django's WSGI and ASGI handlers do (the test client does not): reverse() then
    # includes the prefix, and so does request.path.
    set_script_prefix("/shop/")
    try:
        with override_settings(FORCE_SCRIPT_NAME="/shop"):
            client = Client()
            assert client.get("/bus/whoami").json() == {"session": True, "user": True}
            assert client.get("/api/whoami").json() == {"session": False, "user": False}
    finally:
        clear_script_prefix()


def test_without_the_dashboard_in_the_urlconf_nothing_breaks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with override_settings(ROOT_URLCONF="tests.unit.dashboard.no_dashboard_urls"):
        resp = Client().get("/api/whoami")
    assert resp.json() == {"session": False, "user": False}
    assert "does not include servicebus.dashboard.urls" in caplog.text
