"""The dashboard's own template engine: the app renders in projects without TEMPLATES.

A JSON-API project (like the example orders service) configures no template engine; the
dashboard ships its templates and renders them with a private engine instead.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template import Context, Engine
from django.urls import reverse

HERE = Path(__file__).resolve().parent
TEMPLATE_DIR = HERE / "templates" / "servicebus_dashboard"
STATIC_DIR = HERE / "static" / "servicebus_dashboard"
# The files the asset view serves, with their content types (nothing else is served).
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


@functools.cache
def engine() -> Engine:
    """The Django template engine over the app's templates (autoescaping on)."""
    return Engine(
        dirs=[str(TEMPLATE_DIR)],
        libraries={"dashboard": "servicebus.dashboard.templatetags.dashboard"},
        debug=bool(getattr(settings, "DEBUG", False)),
    )


@functools.cache
def asset_version(name: str) -> str:
    """A short content hash, so browsers may cache an asset until it changes."""
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def page_context(request: HttpRequest) -> dict[str, Any]:
    """What every page needs: the user, the CSRF token, the mount and asset URLs."""
    mount = reverse("servicebus_dashboard:overview")
    return {
        "request": request,
        "user": getattr(request, "user", None),
        "csrf_token": get_token(request),
        "mount": mount,
        "ws_path": f"{mount}ws",
        "css_url": asset_url("dashboard.css"),
        "js_url": asset_url("dashboard.js"),
    }


def asset_url(name: str) -> str:
    """URL of a shipped asset, versioned by content."""
    url = reverse("servicebus_dashboard:asset", args=[name])
    return f"{url}?v={asset_version(name)}"


class Lenient(dict[str, Any]):
    """A dict whose missing keys read as None in templates (a figure not reported yet).

    Django raises for a missing variable used as a filter argument; telemetry from an
    older or newer worker may lack a field, and the page must still render.
    """

    def __missing__(self, key: str) -> Any:
        if hasattr(dict, key):  # ``items``, ``keys``...: the template means the method
            raise KeyError(key)
        return None


def lenient(value: Any) -> Any:
    """``value`` with every nested dict made ``Lenient``."""
    if isinstance(value, dict):
        return Lenient({str(k): lenient(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return [lenient(v) for v in value]
    return value


def render_fragment(name: str, context: dict[str, Any]) -> str:
    """Render one template to a string (pages and the live WebSocket updates alike)."""
    return engine().get_template(name).render(Context(context, autoescape=True))


def render(
    request: HttpRequest, name: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    """A full page: the template with the common page context."""
    html = render_fragment(name, {**page_context(request), **context})
    response = HttpResponse(html, status=status, content_type="text/html; charset=utf-8")
    # A staff-only view of live internals: never cached by a shared cache, never framed.
    response["Cache-Control"] = "no-store"
    response["X-Frame-Options"] = "DENY"
    return response
