"""The PostgreSQL that tests and benchmarks use when one answers: 127.0.0.1:5432, user
postgres, trust auth (CI starts one; elsewhere what needs it is skipped)."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"
PORT = 5432
URL = f"postgres://postgres@{HOST}:{PORT}"  # + "/<database>"


def postgres_answers(timeout: float = 0.5) -> bool:
    """True when something accepts connections on 127.0.0.1:5432."""
    try:
        with socket.create_connection((HOST, PORT), timeout=timeout):
            return True
    except OSError:
        return False
