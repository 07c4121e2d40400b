"""The monolith baseline of ``benchmarks.orders``: the embedded mode's settings (the three
apps, each on its own database, same models and code), but the saga calls the handlers
as plain functions (``bus.call``) instead of over a channel layer."""

from embedded_project.settings import *  # noqa: F403

ASGI_APPLICATION = "monolith_project.asgi.application"
# Saga steps as in-process function calls: no envelope, no layer, no worker.
ORDERS_BUS_CALL = "monolith_project.bus.call"
