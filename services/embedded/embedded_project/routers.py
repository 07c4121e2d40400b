"""Each service's app on its own database, as if the services ran apart."""

from __future__ import annotations

from typing import Any

DATABASE_FOR_APP = {"inventory": "inventory", "pricing": "pricing", "orders": "default"}


class ServiceDatabaseRouter:
    """Reads, writes and migrations of an app go to its service's database only."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return DATABASE_FOR_APP.get(model._meta.app_label)

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return DATABASE_FOR_APP.get(model._meta.app_label)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # No foreign keys across services: they share no data, only bus methods.
        return obj1._meta.app_label == obj2._meta.app_label

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        if app_label == "servicebus_outbox":
            # Every service has its own outbox, inbox and tombstones (the library always
            # names the database of the model it works on).
            return True
        return db == DATABASE_FOR_APP.get(app_label, "default")
