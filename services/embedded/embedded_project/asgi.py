"""The embedded mode's ASGI application: the orders HTTP API, with the three services'
workers running in this process on the in-memory channel layer, and the replicas of
inventory's products kept up to date in-process (replication.py).

Nothing starts at import: the workers start on the server's own event loop with the
first request (the in-memory layer works within one loop, where the async views'
``acall`` runs too), and the replica refresher with them.
"""

import asyncio
import atexit
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "embedded_project.settings")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()  # sets Django up before the imports below

from inventory.service import inventory  # noqa: E402
from orders.service import orders  # noqa: E402
from pricing.service import pricing  # noqa: E402

from embedded_project.replication import start_refresher  # noqa: E402
from servicebus.testing import serve  # noqa: E402


class WithServices:
    """ASGI wrapper that starts the services' worker on the first request's loop."""

    def __init__(self, app) -> None:
        self.app = app
        self.ready: asyncio.Future[None] | None = None

    async def __call__(self, scope, receive, send) -> None:
        if self.ready is None:
            self.ready = asyncio.get_running_loop().create_future()
            # Held here: the task runs the worker for the life of the process.
            self.task = asyncio.create_task(self.serve(self.ready))
        await asyncio.shield(self.ready)
        await self.app(scope, receive, send)

    async def serve(self, ready: asyncio.Future[None]) -> None:
        try:
            async with serve(inventory, pricing, orders):
                refresher = start_refresher()
                if refresher is not None:
                    atexit.register(refresher.stop)
                ready.set_result(None)
                await asyncio.Event().wait()  # until the server stops
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise


application = WithServices(django_application)
