"""Server-rendered pages of the dashboard (staff only), its login and its assets."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET

from servicebus.dashboard import data
from servicebus.dashboard.access import is_staff, staff_page
from servicebus.dashboard.render import ASSETS, STATIC_DIR, lenient, render


def live_context(view: str, **args: Any) -> dict[str, Any]:
    """The figures of ``view`` for its template, or the reason they cannot be read."""
    try:
        figures = lenient(data.read(view, **args))
        return {"data": figures, "error": None, "missing": False}
    except data.Unavailable as exc:
        return {"data": None, "error": str(exc), "missing": False}
    except data.NotFound:
        return {"data": None, "error": None, "missing": True}


def _page(request: HttpRequest, view: str, title: str, **args: Any) -> HttpResponse:
    context = {
        "view": view,
        "title": title,
        "live_template": f"{view}_live.html",
        "live_args": json.dumps(args),
        **args,
        **live_context(view, **args),
    }
    return render(request, f"{view}.html", context)


@require_GET
@staff_page
def overview(request: HttpRequest) -> HttpResponse:
    """Every service and its instances, load, rates, latency and sparklines."""
    return _page(request, "overview", "Overview")


@require_GET
@staff_page
def service(request: HttpRequest, name: str) -> HttpResponse:
    """One service: its methods (docs, schemas) and per-method figures."""
    return _page(request, "service", name, name=name)


@require_GET
@staff_page
def trace(request: HttpRequest, correlation_id: str = "") -> HttpResponse:
    """A request's calls across services as a waterfall; ``?id=`` from the search box."""
    pasted = request.GET.get("id", "").strip()
    if pasted and not correlation_id:
        target = reverse("servicebus_dashboard:trace", args=[pasted])
        return HttpResponseRedirect(target)
    if not correlation_id:
        return render(request, "trace_search.html", {"view": "trace", "title": "Trace"})
    return _page(request, "trace", f"Trace {correlation_id}", correlation_id=correlation_id)


@require_GET
@staff_page
def failures(request: HttpRequest) -> HttpResponse:
    """The most recent failed calls, each linked to its trace."""
    return _page(request, "failures", "Failures")


@require_GET
@staff_page
def events(request: HttpRequest) -> HttpResponse:
    """Event streams, consumer-group lag and pending, outbox backlog, dead letters."""
    return _page(request, "events", "Events")


@csrf_protect
def login(request: HttpRequest) -> HttpResponse:
    """Django's authentication form; only staff get past the pages afterwards."""
    # Imported here: the URLconf stays importable (and `manage.py check` says what is
    # missing, servicebus_dashboard.E001) in a project without django.contrib.auth.
    from django.contrib.auth.forms import AuthenticationForm

    target = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = ""
    target = target or reverse("servicebus_dashboard:overview")
    if request.method == "POST":
        form = AuthenticationForm(request, data=request.POST)
        if form.is_valid():
            auth_login(request, form.get_user())
            return HttpResponseRedirect(target)
    elif request.method == "GET":
        if is_staff(getattr(request, "user", None)):
            return HttpResponseRedirect(target)
        form = AuthenticationForm(request)
    else:
        return HttpResponseNotAllowed(["GET", "POST"])
    return render(request, "login.html", {"form": form, "next": target, "title": "Sign in"})


@csrf_protect
def logout(request: HttpRequest) -> HttpResponse:
    """POST only (a GET must not sign anyone out); back to the login page."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    auth_logout(request)
    return HttpResponseRedirect(reverse("servicebus_dashboard:login"))


@require_GET
def asset(request: HttpRequest, name: str) -> HttpResponse:
    """The app's script and stylesheet (shipped in the package; no collectstatic needed)."""
    if name not in ASSETS:
        raise Http404(name)
    response = HttpResponse((STATIC_DIR / name).read_bytes(), content_type=ASSETS[name])
    # URLs carry a content hash (render.asset_url): a changed file gets a new URL.
    response["Cache-Control"] = "public, max-age=86400"
    return response
