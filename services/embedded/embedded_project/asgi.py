"""The embedded mode's ASGI application: the orders HTTP API, with the three services'
workers running in this process on the in-memory channel layer, and the replicas of
inventory's products kept up to date in-process (replication.py)."""

import atexit
import contextlib
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "embedded_project.settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()  # sets Django up before the service imports below

from inventory.service import inventory  # noqa: E402
from orders.service import orders  # noqa: E402
from pricing.service import pricing  # noqa: E402

from embedded_project.replication import start_refresher  # noqa: E402
from servicebus.testing import serve_in_background  # noqa: E402

# The in-memory layer lives on one event loop: the workers run on the sync bridge's
# loop, where every servicebus.call() from the views is sent too.
_workers = contextlib.ExitStack()
_workers.enter_context(serve_in_background(inventory, pricing, orders))
atexit.register(_workers.close)

# Product changes at inventory reach the replicas by an in-process copy (no Redis).
_refresher = start_refresher()
if _refresher is not None:
    atexit.register(_refresher.stop)
