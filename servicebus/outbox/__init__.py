"""Durable events: a transactional outbox, Redis Streams transport, consumers, replication.

Add ``"servicebus.outbox"`` to ``INSTALLED_APPS``. ``publish_event`` and ``subscriber``
are importable before Django is set up; the model mixins (``SourceModel``,
``ReplicaModel``) load lazily because Django models need the app registry.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from servicebus.outbox.codec import Event
from servicebus.outbox.errors import (
    ConsumerConfigError,
    DumpFormatError,
    OutboxError,
    ReplicationConfigError,
    UndecodableEvent,
)
from servicebus.outbox.publisher import publish_event
from servicebus.outbox.registry import subscriber

if TYPE_CHECKING:
    from servicebus.outbox.replica import ReplicaModel
    from servicebus.outbox.source import SourceModel

__all__ = [
    "ConsumerConfigError",
    "DumpFormatError",
    "Event",
    "OutboxError",
    "ReplicaModel",
    "ReplicationConfigError",
    "SourceModel",
    "UndecodableEvent",
    "publish_event",
    "subscriber",
]

_LAZY = {"ReplicaModel": "servicebus.outbox.replica", "SourceModel": "servicebus.outbox.source"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'servicebus.outbox' has no attribute {name!r}")
