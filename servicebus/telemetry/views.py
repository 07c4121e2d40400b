"""Django view for processes served by daphne: ``path("metrics", metrics)``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from servicebus.telemetry.prometheus import exposition


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition of this process's metrics (GET /metrics)."""
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)
