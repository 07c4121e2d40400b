"""How failures become HTTP responses: one table from error code to status, and the
JSON error body every client error uses (Django's own 404/400/500 pages included)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from asgiref.sync import markcoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse

# Codes of failed orders and failed calls; anything else is a 502 (a service failed).
STATUS_FOR_CODE = {
    "invalid_request": 400,
    "bad_request": 400,
    "unknown_sku": 400,
    "card_declined": 402,
    "not_found": 404,
    "method_not_allowed": 405,
    "out_of_stock": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "idempotency_key_reused": 422,
    "backpressure": 503,
    "unavailable": 503,
    "payment_unavailable": 503,
    # Inventory has the product but pricing's replica does not (yet): replication lag.
    "unknown_product": 503,
    "timeout": 504,
    "internal": 500,
}
# Worth retrying after a pause (with a new Idempotency-Key: the failed order is undone).
RETRY_AFTER_SECONDS = {
    "backpressure": 1,
    "unavailable": 2,
    "payment_unavailable": 2,
    "unknown_product": 2,
}


class ClientError(Exception):
    """The request itself is wrong (4xx): ``code`` picks the status, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def status_for(code: str) -> int:
    """The HTTP status for an error code."""
    return STATUS_FOR_CODE.get(code, 502)


def error_response(code: str, message: str, **extra: Any) -> JsonResponse:
    """``{"error": {"code", "message"}, ...extra}`` with the code's status."""
    response = JsonResponse({"error": {"code": code, "message": message}, **extra})
    response.status_code = status_for(code)
    if code in RETRY_AFTER_SECONDS:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS[code])
    return response


def allow(*methods: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Like ``require_http_methods``, but the 405 is the API's JSON error (sync or async view)."""

    def refuse() -> JsonResponse:
        response = error_response("method_not_allowed", f"use {' or '.join(methods)}")
        response["Allow"] = ", ".join(methods)
        return response

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                if request.method not in methods:
                    return refuse()
                return await view(request, *args, **kwargs)

            return markcoroutinefunction(async_wrapper)

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if request.method not in methods:
                return refuse()
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


# Django's error handlers (``handler404`` ... in the URLconf): JSON, never an HTML page.


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400 for what Django refuses before a view runs (e.g. a disallowed Host)."""
    return error_response("invalid_request", "the request is malformed")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """403, as JSON."""
    response = error_response("forbidden", "forbidden")
    response.status_code = 403
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 for an unknown path."""
    return error_response("not_found", "no such resource")


def server_error(request: HttpRequest) -> HttpResponse:
    """500: a bug here, logged by Django with its traceback; the client gets the JSON shape."""
    return error_response("internal", "internal error")
