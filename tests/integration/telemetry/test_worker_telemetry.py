"""Telemetry of real runworker processes: discovery, registry, /metrics, records, logs, traces."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

import servicebus
from servicebus.errors import MethodNotFound
from servicebus.telemetry import read
from servicebus.telemetry.store import RedisStore
from tests.integration.telemetry.spans import read_spans
from tests.support.processes import ManagedProcess, runworker
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis
SETTINGS = "tests.integration.telemetry.proc_settings"


def start(channels: list[str], redis_url: str, **env: str) -> ManagedProcess:
    return runworker(
        channels, redis_url=redis_url, concurrency=8, settings=SETTINGS, extra_env=env,
        name="+".join(channels),
    )  # fmt: skip


def poll(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Retry ``check`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def overview(redis_url: str) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        store = RedisStore(redis_url, "asgi")
        try:
            return await read.overview(store)
        finally:
            await store.close()

    return asyncio.run(go())


def test_discovery_registry_status_and_records(bus: str) -> None:
    worker = start(["misc.request", "chain_a.request", "chain_b.request", "chain_c.request"], bus)
    try:
        ping = servicebus.call("misc.request", "_ping")
        assert ping["service"] == "misc" and ping["instance"].split(":")[1] == str(worker.proc.pid)
        info = servicebus.call("misc.request", "_info")
        assert info["pid"] == worker.proc.pid and info["version"]
        names = [m["name"] for m in info["methods"]]
        assert "echo" in names and "_ping" not in names
        greet = next(m for m in info["methods"] if m["name"] == "greet")
        assert greet["doc"] == "Say hello: a typed body, so _info reports its schemas."
        assert greet["request_schema"]["$defs"]["Greeting"]["required"] == ["name"]
        assert greet["response_schema"] == {"type": "string"}
        assert servicebus.call("misc.request", "greet", {"name": "ops"}) == "hello ops"
        for _ in range(20):
            servicebus.call("misc.request", "echo", {"x": 1})
        with pytest.raises(servicebus.RemoteError):
            servicebus.call("misc.request", "fail")
        with pytest.raises(MethodNotFound):
            servicebus.call("misc.request", "no_such_" + "x" * 300)
        with servicebus.bind("trace-1"):
            servicebus.call("chain_a.request", "start", None, timeout=10)

        async def flood() -> float:
            # 2,000 _stats at 64 in flight: answered from a cached snapshot, bounded work.
            sem = asyncio.Semaphore(64)

            async def one() -> None:
                async with sem:
                    await servicebus.acall("misc.request", "_stats", timeout=10)

            started = time.monotonic()
            await asyncio.gather(*(one() for _ in range(2000)))
            return time.monotonic() - started

        assert asyncio.run(flood()) < 30
        assert servicebus.call("misc.request", "sync_echo", 5) == 5  # still serving
        time.sleep(0.6)  # _stats answers from a snapshot up to 0.5 s old
        stats = servicebus.call("misc.request", "_stats")
        assert stats["methods"]["echo"]["codes"]["ok"] == 20
        assert stats["methods"]["fail"]["codes"] == {"out_of_stock": 1}
        assert "_unknown" in stats["methods"] and stats["concurrency"] == 8

        def misc_listed() -> dict[str, Any] | None:
            for svc in overview(bus)["services"]:
                if svc["name"] == "misc" and svc["calls_per_s"] > 0:
                    return svc
            return None

        misc = poll(misc_listed)
        assert misc, worker.output[-2000:]
        assert [i["pid"] for i in misc["instances"]] == [worker.proc.pid]
        assert misc["capacity"] == 100 and misc["backlog"] == 0 and misc["errors_per_s"] > 0

        out = io.StringIO()
        call_command("servicebus_status", "--json", stdout=out)
        status = json.loads(out.getvalue())
        assert {s["name"] for s in status["services"]} >= {"misc", "chain_a", "chain_b"}

        async def traced() -> dict[str, Any]:
            store = RedisStore(bus, "asgi")
            try:
                return await read.trace(store, "trace-1")
            finally:
                await store.close()

        trace = poll(lambda: (t := asyncio.run(traced()))["calls"] and len(t["calls"]) == 3 and t)
        assert trace, "no trace recorded"
        assert [(c["service"], c["method"], c["depth"]) for c in trace["calls"]] == [
            ("chain_a", "start", 0), ("chain_b", "middle", 1), ("chain_c", "leaf", 2),
        ]  # fmt: skip
        out = io.StringIO()
        call_command("servicebus_status", stdout=out)
        text = out.getvalue()
        assert "misc" in text and f"pid {worker.proc.pid}" in text
    finally:
        worker.stop()
    # A clean stop takes the instance out of the registry at once.
    assert overview(bus)["services"] == []


def test_metrics_port_and_json_access_log(bus: str) -> None:
    port = free_port()
    args = [sys.executable, "-m", "django", "runworker", "misc.request", "--settings", SETTINGS,
            "--metrics-port", f"127.0.0.1:{port}"]  # fmt: skip
    worker = ManagedProcess(args, env={"SB_REDIS_URL": bus, "SB_JSON_LOGS": "1"}, name="metrics")
    worker.start(ready="worker serving")
    try:
        with servicebus.bind("cid-json"):
            servicebus.call("misc.request", "echo", 1)
        for i in range(50):
            with pytest.raises(MethodNotFound):
                servicebus.call("misc.request", f"odd-{i}")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'servicebus_requests_total{code="ok",method="echo",service="misc"} 1.0' in body
        unknown = 'code="method_not_found",method="_unknown",service="misc"'
        assert f"servicebus_requests_total{{{unknown}}} 50.0" in body
        assert "odd-" not in body
        assert 'servicebus_worker_concurrency{service="misc"} 64.0' in body
        assert "servicebus_request_duration_seconds_bucket" in body
        line = json.loads(worker.wait_for('"servicebus.access"'))
        assert line["correlation_id"] == "cid-json" and line["method"] == "echo"
        assert line["code"] == "ok" and line["caller"] == "tests" and line["duration_ms"] >= 0
    finally:
        worker.stop()


def test_heartbeat_catches_up_after_redis_outage(settings) -> None:
    with RedisServer() as server:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "servicebus.layers.RedisChannelLayer",
                                               "CONFIG": {"hosts": [server.url]}}}  # fmt: skip
        worker = start(["misc.request"], server.url)
        try:
            assert poll(lambda: overview(server.url)["services"])
            server.stop()
            time.sleep(1.5)
            assert worker.alive()
            server.start()
            # Empty after the restart (no persistence): the next beats list it again.
            assert poll(lambda: overview(server.url)["services"], timeout=15), worker.output[-3000:]
            from servicebus.bridge import bridge

            bridge.stop()
            from channels.layers import channel_layers

            channel_layers.backends.clear()
            assert poll(lambda: _echo_ok(), timeout=15)
        finally:
            worker.stop()


def _echo_ok() -> bool:
    try:
        return servicebus.call("misc.request", "echo", 7, timeout=2) == 7
    except servicebus.ServiceBusError:
        return False


def test_trace_across_three_processes(bus: str, tmp_path: Path) -> None:
    files = {name: str(tmp_path / f"{name}.jsonl") for name in ("a", "b", "c")}
    workers = [
        start([f"chain_{name}.request"], bus, SB_SPANS_FILE=files[name]) for name in ("a", "b", "c")
    ]
    try:
        servicebus.call("chain_a.request", "start", None, timeout=10)
        spans = poll(lambda: (s := [x for f in files.values() for x in read_spans(f)]) and
                     len(s) >= 5 and s, timeout=10)  # fmt: skip
    finally:
        for w in workers:
            w.stop()
    assert spans, "spans not exported"
    by = {(s["name"], s["kind"]): s for s in spans}
    a = by[("chain_a/start", "SERVER")]
    ab = by[("chain_b/middle", "CLIENT")]
    b = by[("chain_b/middle", "SERVER")]
    bc = by[("chain_c/leaf", "CLIENT")]
    c = by[("chain_c/leaf", "SERVER")]
    assert len({s["trace_id"] for s in (a, ab, b, bc, c)}) == 1
    assert a["parent_id"] is None  # the test process has no tracer: A is the root
    assert ab["parent_id"] == a["span_id"]
    assert b["parent_id"] == ab["span_id"]
    assert bc["parent_id"] == b["span_id"]
    assert c["parent_id"] == bc["span_id"]
    assert {s["span_id"] for s in read_spans(files["b"])} == {b["span_id"], bc["span_id"]}
    assert c["attributes"]["rpc.service"] == "chain_c" and c["status"] == "UNSET"
