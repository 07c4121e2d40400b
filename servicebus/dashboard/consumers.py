"""Live figures over a WebSocket: the dashboard dogfoods Channels.

A page opens ``<mount>ws`` and says which view it shows; the consumer re-reads that
view's figures every ``refresh`` seconds and sends the re-rendered live part of the page
(the same template the page was rendered with), or the reason Redis cannot be read.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from servicebus.dashboard import data
from servicebus.dashboard.access import is_staff
from servicebus.dashboard.render import lenient, render_fragment

logger = logging.getLogger("servicebus.dashboard")

# The arguments each view takes from the page (anything else is refused).
VIEW_ARGS = {
    "overview": (),
    "service": ("name",),
    "trace": ("correlation_id",),
    "failures": (),
    "events": (),
}
MAX_ARG_LENGTH = 200


async def live_fragment(
    view: str, args: dict[str, str], mount: str
) -> tuple[str | None, str | None]:
    """The live part of a view's page, or no HTML and why the figures cannot be read."""
    context: dict[str, Any] = {"view": view, "mount": mount, **args, "missing": False}
    # A service's method docs and schemas are on the page already (its _info answer,
    # read once at page load): the refreshes ask for the figures only.
    read_args = {**args, "ask": False} if view == "service" else args
    try:
        context["data"] = lenient(await data.aread(view, **read_args))
    except data.Unavailable as exc:
        return None, str(exc)  # the page keeps its last figures, marked stale
    except data.NotFound:
        context.update(data=None, missing=True)
    render = sync_to_async(render_fragment, thread_sensitive=False)
    return await render(f"{view}_live.html", context), None


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    """Staff only (the handshake of anyone else is refused: HTTP 403); read-only."""

    # Seconds between two pushes of fresh figures.
    refresh = 1.5
    # No channel layer: the consumer pushes from its own task and joins no group. With one,
    # channels would also wait on the layer's receive, and a Redis outage would end that
    # receive with an error and close the very page that should say Redis is down.
    channel_layer_alias = None

    async def connect(self) -> None:
        """Accept staff users (the scope's user comes from channels' AuthMiddlewareStack)."""
        if "user" not in self.scope:
            logger.error(
                "dashboard WebSocket without a user in its scope: wrap the route in "
                "channels.auth.AuthMiddlewareStack (docs/dashboard.md)"
            )
        if not is_staff(self.scope.get("user")):
            await self.close()  # before accept: the handshake is answered with 403
            return
        self.task: asyncio.Task[None] | None = None
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """``{"view": "service", "args": {"name": "orders"}}`` starts pushing that view."""
        subscription = self._parse(content)
        if subscription is None:
            await self.send_json({"ok": False, "error": "unknown view or arguments"})
            return
        if self.task is not None:
            self.task.cancel()
        self.task = asyncio.ensure_future(self._push(*subscription))

    async def disconnect(self, code: int) -> None:
        """Stop pushing."""
        task = getattr(self, "task", None)
        if task is not None:
            task.cancel()

    def _parse(self, content: Any) -> tuple[str, dict[str, str], str] | None:
        if not isinstance(content, dict):
            return None
        view, args = content.get("view"), content.get("args") or {}
        if view not in VIEW_ARGS or not isinstance(args, dict):
            return None
        if set(args) != set(VIEW_ARGS[view]):
            return None
        if not all(isinstance(v, str) and 0 < len(v) <= MAX_ARG_LENGTH for v in args.values()):
            return None
        # Links in the fragments start at the dashboard's mount: this route is <mount>ws.
        mount = str(self.scope.get("path", "/ws")).removesuffix("ws") or "/"
        return view, args, mount

    async def _push(self, view: str, args: dict[str, str], mount: str) -> None:
        last = ""
        while True:
            started = time.monotonic()
            try:
                html, error = await live_fragment(view, args, mount)
            except Exception:
                # A bug in one read must not end the page's live updates: log and retry.
                logger.exception("dashboard: rendering %s failed", view)
                html, error = None, "the dashboard could not read its figures (see its logs)"
            digest = "" if html is None else hashlib.sha1(html.encode()).hexdigest()
            fresh = html is not None and digest != last
            await self.send_json(
                {
                    "ok": error is None,
                    "error": error,
                    "at": time.time(),
                    # Unchanged figures are not sent again: the page keeps its DOM.
                    "html": html if fresh else None,
                }
            )
            # After an outage the next figures are sent even if they did not change.
            last = digest if html is not None else ""
            await asyncio.sleep(max(0.1, self.refresh - (time.monotonic() - started)))
