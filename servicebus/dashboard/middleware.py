"""Sessions and auth for the dashboard's own paths only: a MIDDLEWARE entry for JSON APIs.

Under ASGI, Django runs each ``MiddlewareMixin`` middleware's hooks through
``sync_to_async``: SessionMiddleware and AuthenticationMiddleware cost every request three
thread hand-offs, sessions or not. A project whose other views need neither (a JSON API
served by daphne) lists ``DashboardAuthMiddleware`` instead of the two, and only the
dashboard's pages, API and login pay for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

logger = logging.getLogger("servicebus.dashboard")


class DashboardAuthMiddleware:
    """Django's SessionMiddleware and AuthenticationMiddleware, under the dashboard's mount only."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        # As Django chains them: an exception inside becomes a response before it leaves.
        self.authenticated = SessionMiddleware(
            convert_exception_to_response(AuthenticationMiddleware(get_response))
        )
        self._mount: str | None = None
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)  # Django then calls and awaits it on the async path

    @property
    def mount(self) -> str:
        """The dashboard's URL prefix with the script prefix (``/bus/``), "" when the URLconf
        does not include the dashboard (then no request gets sessions or auth)."""
        if self._mount is None:
            try:
                self._mount = reverse("servicebus_dashboard:overview")
            except NoReverseMatch:
                logger.warning(
                    "DashboardAuthMiddleware: the URLconf does not include "
                    "servicebus.dashboard.urls; no request gets sessions or auth"
                )
                self._mount = ""
        return self._mount

    def __call__(self, request: HttpRequest) -> Any:
        """The response (or, on the async path, the awaitable of it)."""
        mount = self.mount
        # request.path, not path_info: reverse() includes the script prefix too.
        if mount and request.path.startswith(mount):
            return self.authenticated(request)
        return self.get_response(request)
