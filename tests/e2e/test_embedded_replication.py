"""Embedded mode (no Redis): product changes at inventory reach the replicas in-process."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import CARD_OK, SERVICES_DIR
from tests.support.processes import ROOT, ManagedProcess
from tests.support.redis_server import free_port

pytestmark = pytest.mark.e2e

EMBEDDED = SERVICES_DIR / "embedded"
APP = "embedded_project.asgi:application"


def replica_skus(data_dir: Path, service: str) -> set[str]:
    with contextlib.closing(sqlite3.connect(data_dir / f"{service}.sqlite3")) as db:
        return {sku for (sku,) in db.execute(f"SELECT sku FROM {service}_product")}


def post_order(port: int, sku: str, qty: int) -> tuple[int, Any]:
    body = json.dumps({"items": [{"sku": sku, "qty": qty}], "card_number": CARD_OK}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/orders", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_embedded_replicas_follow_inventory(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "embedded_project.settings",
        "PYTHONPATH": os.pathsep.join(
            [
                str(ROOT),
                *(str(SERVICES_DIR / s) for s in ("inventory", "pricing", "orders", "contracts")),
            ]
        ),
        "EMBEDDED_DATA_DIR": str(tmp_path),
        "EMBEDDED_REPLICATION_INTERVAL": "0.2",
    }

    def manage(*args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=EMBEDDED, env=env, check=True, timeout=60
        )

    manage("setup_services")
    port = free_port()
    web = ManagedProcess(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "1", APP],
        env=env,
        cwd=EMBEDDED,
        name="embedded",
    ).start()
    try:
        web.wait_for("Listening on TCP address", timeout=30)
        manage("set_product", "EMB-01", "--name", "Embedded mug", "--price", "450", "--stock", "9")
        deadline = time.monotonic() + 15
        while True:  # replicated within a few refresher passes
            status, body = post_order(port, "EMB-01", 2)
            if status == 201 or time.monotonic() > deadline:
                break
            assert body["order"]["failure_code"] == "unknown_product", body
            time.sleep(0.2)
        assert status == 201, body
        assert body["order"]["total_cents"] == 900
        assert body["order"]["items"][0]["name"] == "Embedded mug"

        manage("delete_product", "LTD-01")
        deadline = time.monotonic() + 15
        while "LTD-01" in replica_skus(tmp_path, "pricing") | replica_skus(tmp_path, "orders"):
            assert time.monotonic() < deadline, "LTD-01 still in a replica"
            time.sleep(0.2)
        status, body = post_order(port, "LTD-01", 1)
        assert status == 400 and body["order"]["failure_code"] == "unknown_sku", body
    finally:
        web.signal()
        web.stop(timeout=10)
    assert not [line for line in web.lines if "Traceback" in line]
