"""Access rules: anonymous users log in (pages) or get 403 (API); non-staff get 403."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PAGES = ["/bus/", "/bus/services/orders", "/bus/traces/", "/bus/traces/cid-1", "/bus/failures"]
PAGES += ["/bus/events"]
API = ["/bus/api/overview", "/bus/api/services/orders", "/bus/api/traces/cid-1"]
API += ["/bus/api/failures", "/bus/api/events"]


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_page_redirects_to_login(telemetry: Any, url: str) -> None:
    resp = Client().get(url)
    assert resp.status_code == 302
    assert resp["Location"].startswith("/bus/login/?next=")
    assert telemetry.calls == []  # nothing read for someone who may not see it


@pytest.mark.parametrize("url", API)
def test_anonymous_api_is_403(telemetry: Any, url: str) -> None:
    resp = Client().get(url)
    assert resp.status_code == 403
    assert resp.json()["error"] == "forbidden"
    assert telemetry.calls == []


@pytest.mark.parametrize("url", PAGES + API)
def test_non_staff_is_403(telemetry: Any, plain_client: Client, url: str) -> None:
    resp = plain_client.get(url)
    assert resp.status_code == 403
    assert telemetry.calls == []


@pytest.mark.parametrize("url", PAGES + API)
def test_staff_sees_everything(telemetry: Any, staff_client: Client, url: str) -> None:
    resp = staff_client.get(url)
    assert resp.status_code == 200, resp.content[:500]


def test_inactive_staff_is_anonymous(telemetry: Any, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("gone", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    user.is_active = False
    user.save()
    assert client.get("/bus/").status_code == 302
    assert client.get("/bus/api/overview").status_code == 403


def test_login_then_back_to_the_page_asked_for(telemetry: Any, staff_user: Any) -> None:
    client = Client()
    page = client.get("/bus/login/?next=/bus/failures")
    assert page.status_code == 200
    assert b'name="password"' in page.content
    resp = client.post(
        "/bus/login/",
        {"username": "ops", "password": "pw-ops-1234", "next": "/bus/failures"},
    )
    assert resp.status_code == 302
    assert resp["Location"] == "/bus/failures"
    assert client.get("/bus/failures").status_code == 200


def test_login_never_redirects_off_site(telemetry: Any, staff_user: Any) -> None:
    resp = Client().post(
        "/bus/login/",
        {"username": "ops", "password": "pw-ops-1234", "next": "https://evil.example/"},
    )
    assert resp["Location"] == "/bus/"


def test_wrong_password_stays_on_login(telemetry: Any, staff_user: Any) -> None:
    resp = Client().post("/bus/login/", {"username": "ops", "password": "nope"})
    assert resp.status_code == 200
    assert b"correct username and password" in resp.content


def test_login_post_needs_csrf(staff_user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    resp = client.post("/bus/login/", {"username": "ops", "password": "pw-ops-1234"})
    assert resp.status_code == 403


def test_logout_is_post_only(telemetry: Any, staff_client: Client) -> None:
    assert staff_client.get("/bus/logout/").status_code == 405
    assert staff_client.get("/bus/").status_code == 200
    resp = staff_client.post("/bus/logout/")
    assert resp.status_code == 302
    assert staff_client.get("/bus/").status_code == 302


def test_pages_are_not_cached_or_framed(telemetry: Any, staff_client: Client) -> None:
    resp = staff_client.get("/bus/")
    assert resp["Cache-Control"] == "no-store"
    assert resp["X-Frame-Options"] == "DENY"


def csrf_token_of(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_pages_set_the_csrf_cookie_their_forms_need(telemetry: Any, staff_user: Any) -> None:
    # No CsrfViewMiddleware in these settings (as in a JSON-API project): still protected.
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    assert client.post("/bus/logout/").status_code == 403  # no token
    page = client.get("/bus/")
    assert "csrftoken" in page.cookies
    resp = client.post(
        "/bus/logout/", {"csrfmiddlewaretoken": csrf_token_of(page.content.decode())}
    )
    assert resp.status_code == 302
    assert client.get("/bus/").status_code == 302  # signed out
