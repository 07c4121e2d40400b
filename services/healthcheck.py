"""Container healthchecks for the example services (docker-compose.yml).

    python /app/services/healthcheck.py worker inventory     # inventory.ping answers over the bus
    python /app/services/healthcheck.py process inventory servicebus_relay

``worker``: a worker of the service answers ``ping`` within 3 s (through Redis, end to
end). ``process``: PID 1 of the container runs that command, and what it needs (the
service's database, Redis) answers. Exit 0 when healthy, 1 with a reason otherwise.
Run in the service's directory (its ``working_dir``), where ``<service>_project`` lives.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    kind, service, *rest = argv
    sys.path.insert(0, os.getcwd())  # the service's project package
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"{service}_project.settings")
    import django

    django.setup()
    if kind == "worker":
        import servicebus

        servicebus.call(f"{service}.request", "ping", timeout=3.0)
        return 0
    command = rest[0]
    if command not in Path("/proc/1/cmdline").read_bytes().decode(errors="replace"):
        print(f"PID 1 is not {command}", file=sys.stderr)
        return 1
    from django.db import connection

    connection.ensure_connection()
    import redis

    from servicebus.environ import redis_url

    redis.Redis.from_url(redis_url(), socket_timeout=3).ping()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as exc:  # any failure is "unhealthy", said in one line
        print(f"unhealthy: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
