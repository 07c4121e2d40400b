"""Who may see the dashboard: active staff users only (pages, API and WebSocket alike)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

View = Callable[..., HttpResponse]


def is_staff(user: Any) -> bool:
    """True for an authenticated, active user with ``is_staff``."""
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "is_staff", False)
    )


def staff_page(view: View) -> View:
    """Pages: anonymous users go to the login page, signed-in non-staff get a 403 page."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = getattr(request, "user", None)
        if is_staff(user):
            return view(request, *args, **kwargs)
        if user is None or not user.is_authenticated:
            login = reverse("servicebus_dashboard:login")
            return HttpResponseRedirect(f"{login}?{urlencode({'next': request.get_full_path()})}")
        from servicebus.dashboard.render import render

        return render(request, "forbidden.html", {}, status=403)

    # Every page carries a form (sign out, retry...): its CSRF cookie must be set even in
    # a project without CsrfViewMiddleware (a JSON API); the POST views check it.
    return ensure_csrf_cookie(wrapper)


def staff_api(view: View) -> View:
    """JSON API and actions: a 403 with a JSON error for anyone who is not staff."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if is_staff(getattr(request, "user", None)):
            return view(request, *args, **kwargs)
        return JsonResponse({"error": "forbidden", "detail": "staff only"}, status=403)

    return wrapper
