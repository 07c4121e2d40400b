"""Who this process is: one instance id per process, with host, pid, version, start time."""

from __future__ import annotations

import os
import socket
import time
import uuid
from importlib import metadata


def _version() -> str:
    try:
        return metadata.version("servicebus")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0+unknown"


HOST = socket.gethostname()
VERSION = _version()
STARTED = time.time()


class _Identity:
    # Recomputed after fork (a pid change): a forked child is another instance.
    pid = 0
    instance = ""

    def current(self) -> str:
        pid = os.getpid()
        if pid != self.pid:
            self.pid = pid
            self.instance = f"{HOST}:{pid}:{uuid.uuid4().hex[:6]}"
        return self.instance


_identity = _Identity()


def instance_id() -> str:
    """This process's instance id: ``host:pid:random`` (unique across restarts)."""
    return _identity.current()


def uptime() -> float:
    """Seconds since this process imported servicebus telemetry."""
    return time.time() - STARTED
