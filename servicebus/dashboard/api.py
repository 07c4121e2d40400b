"""The JSON API under the dashboard's mount: the same figures the pages show (staff only)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from servicebus.dashboard import data
from servicebus.dashboard.access import staff_api


def _answer(view: str, **args: Any) -> JsonResponse:
    try:
        body = data.read(view, **args)
    except data.Unavailable as exc:
        return JsonResponse({"error": "unavailable", "detail": str(exc)}, status=503)
    except data.NotFound as exc:
        return JsonResponse({"error": "not_found", "detail": str(exc)}, status=404)
    response = JsonResponse(body)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@staff_api
def overview(request: HttpRequest) -> JsonResponse:
    """``{"services": [{"name", "instances", ...}], ...}``."""
    return _answer("overview")


@require_GET
@staff_api
def service(request: HttpRequest, name: str) -> JsonResponse:
    """One service: methods from ``_info`` and per-method figures."""
    return _answer("service", name=name)


@require_GET
@staff_api
def trace(request: HttpRequest, correlation_id: str) -> JsonResponse:
    """Every recorded call of one correlation ID, as waterfall rows."""
    return _answer("trace", correlation_id=correlation_id)


@require_GET
@staff_api
def failures(request: HttpRequest) -> JsonResponse:
    """The most recent failed calls."""
    return _answer("failures")


@require_GET
@staff_api
def events(request: HttpRequest) -> JsonResponse:
    """Streams, consumer groups, outbox backlog and dead letters."""
    return _answer("events")
