"""Dead letters: review, then retry or purge them (the dashboard's only writes).

Each write is a POST (CSRF-protected) that only a confirmation page sends: the list
shows what is dead, the confirmation page names exactly the entries the action will
touch, and the POST acts on those ids alone. The work is the outbox's own functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.apps import apps
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.urls import reverse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from servicebus.dashboard import data
from servicebus.dashboard.access import staff_api, staff_page
from servicebus.dashboard.render import render

ACTIONS = ("retry", "purge")
MAX_SHOWN = 100  # dead letters listed (and so acted on) at once, oldest first
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_TOPIC = re.compile(r"^[\w.:-]{1,200}$")


def _outbox(topic: str) -> Any:
    if not apps.is_installed("servicebus.outbox") or not _TOPIC.match(topic):
        raise Http404("no such topic")
    from servicebus.outbox import transport

    return transport


def _with_redis(work: Callable[[Any], Any], topic: str) -> Any:
    transport = _outbox(topic)
    try:
        client = transport.connect()
        try:
            return work(client)
        finally:
            client.close()
    except Exception as exc:
        if data.is_unavailable(exc):
            raise data.Unavailable(f"Redis is unavailable ({data.describe(exc)})") from exc
        raise


def _ids(values: list[str]) -> list[str] | None:
    ids = list(dict.fromkeys(v.strip() for v in values if v.strip()))
    if not ids or len(ids) > MAX_SHOWN or not all(_STREAM_ID.match(i) for i in ids):
        return None
    return ids


def _rows(entries: list[tuple[str, dict[str, str]]]) -> list[dict[str, Any]]:
    from servicebus.outbox.transport import original_fields

    return [
        {
            "dead_id": dead_id,
            "group": record.get("group", ""),
            "error": record.get("error", "")[:500],
            "dead_at": record.get("dead_at"),
            "stream_id": record.get("stream_id", ""),
            "retryable": bool(original_fields(record)),
        }
        for dead_id, record in entries
    ]


def _unavailable(request: HttpRequest, topic: str, exc: Exception) -> HttpResponse:
    context = {"title": "Dead letters", "topic": topic, "error": str(exc), "rows": []}
    return render(request, "deadletters.html", context, status=503)


@require_GET
@staff_page
def dead_letters(request: HttpRequest, topic: str) -> HttpResponse:
    """The oldest dead letters of one topic, each with retry and purge (confirmed)."""
    try:
        entries = _with_redis(lambda c: _outbox(topic).dead_letters(c, topic, MAX_SHOWN), topic)
    except data.Unavailable as exc:
        return _unavailable(request, topic, exc)
    done = request.GET.get("done")
    context = {
        "title": f"Dead letters: {topic}",
        "view": "",
        "topic": topic,
        "rows": _rows(entries),
        "max_shown": MAX_SHOWN,
        "done": done if done in ACTIONS else None,
        "count": request.GET.get("n", ""),
        "skipped": request.GET.get("skipped", ""),
    }
    return render(request, "deadletters.html", context)


@require_GET
@staff_page
def confirm(request: HttpRequest, topic: str, action: str) -> HttpResponse:
    """Names the dead letters the action will touch; its button sends the POST."""
    ids = _ids(request.GET.getlist("id"))
    if action not in ACTIONS or ids is None:
        return HttpResponseBadRequest("choose retry or purge and 1-100 dead-letter ids")
    try:
        entries = _with_redis(lambda c: _outbox(topic).dead_letters(c, topic, MAX_SHOWN), topic)
    except data.Unavailable as exc:
        return _unavailable(request, topic, exc)
    wanted = set(ids)
    rows = _rows([(i, r) for i, r in entries if i in wanted])
    context: dict[str, Any] = {"title": f"{action.title()} dead letters", "topic": topic}
    context.update(action=action, rows=rows, gone=len(wanted) - len(rows), view="")
    return render(request, "deadletters_confirm.html", context)


@require_POST
@csrf_protect
@staff_api
def act(request: HttpRequest, topic: str, action: str) -> HttpResponse:
    """Retry (re-add to the topic stream) or purge the confirmed dead letters."""
    ids = _ids(request.POST.getlist("id"))
    if action not in ACTIONS or ids is None or request.POST.get("confirm") != "yes":
        return HttpResponseBadRequest("a retry or purge needs its confirmation page")
    transport = _outbox(topic)

    def work(client: Any) -> int:
        if action == "retry":
            from servicebus.outbox.settings import get_outbox_settings

            maxlen = get_outbox_settings().STREAM_MAXLEN
            return sum(transport.retry_dead_letter(client, topic, i, maxlen) for i in ids)
        return sum(transport.purge_dead_letter(client, topic, i) for i in ids)

    try:
        done = int(_with_redis(work, topic))
    except data.Unavailable as exc:
        return _unavailable(request, topic, exc)
    query = urlencode({"done": action, "n": done, "skipped": len(ids) - done})
    url = reverse("servicebus_dashboard:dead-letters", args=[topic])
    return HttpResponseRedirect(f"{url}?{query}")
