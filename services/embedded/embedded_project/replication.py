"""Replication without Redis: copy inventory's products into the replicas in-process.

The separate services replicate through the outbox, Redis Streams and consumers. The
embedded mode has no Redis, so it uses the documented initial-copy path instead,
``servicebus_dump inventory.Product | servicebus_load <app>.Product``: at set-up, at
start, and again whenever inventory's ``(key, revision)`` list changes (checked every
``EMBEDDED_REPLICATION_INTERVAL`` seconds, default 2; 0 turns the checks off). Loading
applies the usual revision rules, and the dump carries tombstones, so updates and
deletes reach the replicas and loading the same dump twice changes nothing.

Inventory still writes its events to its outbox table (``SourceModel`` does that in
every save); with ``PUBLISH_ON_COMMIT`` off and no relay they are simply never sent.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading

from django.core.management import call_command
from django.db import connections

logger = logging.getLogger("embedded.replication")

SOURCE = "inventory.Product"
REPLICAS = ("pricing.Product", "orders.Product")


def source_keys() -> str:
    """Inventory's keys-only dump without its header (which carries the time)."""
    out = io.StringIO()
    call_command("servicebus_dump", SOURCE, "--keys-only", stdout=out, stderr=io.StringIO())
    return out.getvalue().partition("\n")[2]


def copy_replicas() -> None:
    """Dump inventory's products and load the dump into pricing's and orders' replicas."""
    with tempfile.NamedTemporaryFile("w+", suffix=".jsonl", encoding="utf-8") as dump:
        call_command("servicebus_dump", SOURCE, stdout=dump, stderr=io.StringIO())
        dump.flush()
        for replica in REPLICAS:
            out = io.StringIO()
            call_command("servicebus_load", replica, "--file", dump.name, stdout=out)
            logger.info("%s loaded from %s: %s", replica, SOURCE, out.getvalue().strip())


class ReplicaRefresher:
    """A daemon thread that copies the products again whenever inventory's change."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="replica-refresher", daemon=True)
        self.last_keys: str | None = None

    def start(self) -> ReplicaRefresher:
        self.thread.start()
        return self

    def run(self) -> None:
        try:
            while True:
                try:
                    keys = source_keys()
                    if keys != self.last_keys:
                        copy_replicas()
                        self.last_keys = keys
                except Exception:  # keep refreshing: the next pass tries again
                    logger.exception("copying the replicas failed; retrying")
                if self.stopping.wait(self.interval):
                    return
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


def start_refresher() -> ReplicaRefresher | None:
    """Start the refresher unless EMBEDDED_REPLICATION_INTERVAL is 0."""
    interval = float(os.environ.get("EMBEDDED_REPLICATION_INTERVAL", "2"))
    return ReplicaRefresher(interval).start() if interval > 0 else None
