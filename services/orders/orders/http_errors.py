"""How failures become HTTP responses: one table from error code to status."""

from __future__ import annotations

from django.http import JsonResponse

# Codes of failed orders and failed calls; anything else is a 502 (a service failed).
STATUS_FOR_CODE = {
    "invalid_request": 400,
    "bad_request": 400,
    "unknown_sku": 400,
    "card_declined": 402,
    "not_found": 404,
    "out_of_stock": 409,
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


def status_for(code: str) -> int:
    """The HTTP status for an error code."""
    return STATUS_FOR_CODE.get(code, 502)


def error_response(code: str, message: str, **extra) -> JsonResponse:
    """``{"error": {"code", "message"}, ...extra}`` with the code's status."""
    response = JsonResponse({"error": {"code": code, "message": message}, **extra})
    response.status_code = status_for(code)
    if code in RETRY_AFTER_SECONDS:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS[code])
    return response
