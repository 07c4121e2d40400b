"""Helpers of the scaling tests: runworker processes, the caller's layer.

Loads of ``record`` calls and the record files: tests.support.load.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from channels.layers import channel_layers

from tests.support.processes import ManagedProcess

SETTINGS = "tests.integration.cluster.project.settings"

# What a caller may see while Redis fails over: typed errors, never anything else.
ALLOWED = {"ok", "BusUnavailable", "CallTimeout", "Backpressure"}


def start_worker(
    config: dict[str, Any],
    record_dir: Path,
    channels: list[str],
    *,
    name: str = "w0",
    concurrency: int = 64,
) -> ManagedProcess:
    """``runworker`` for ``channels`` on the layer CONFIG ``config``; waits until it serves."""
    args = [sys.executable, "-m", "django", "runworker", *channels, "--settings", SETTINGS]
    args += ["--concurrency", str(concurrency)]
    env = {
        "SCALE_LAYER_CONFIG": json.dumps(config),
        "SCALE_RECORD_DIR": str(record_dir),
        "SCALE_WORKER_NAME": name,
        "SCALE_CHANNELS": ",".join(channels),
    }
    return ManagedProcess(args, env=env, name=name).start(ready="worker serving", timeout=60)


def use_layer(settings: Any, config: dict[str, Any]) -> None:
    """Point this (caller) process's default channel layer at ``config``."""
    channel_layers.backends.clear()
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "servicebus.layers.RedisChannelLayer", "CONFIG": config}
    }
    settings.SERVICEBUS = {"SERVICE_NAME": "scale-caller", "RECEIVE_POLL": 0.2}
