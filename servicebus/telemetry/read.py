"""Read what telemetry recorded: the data shapes of ``servicebus_status --json`` and the dashboard.

- ``overview(store)``: services, their instances, backlog vs capacity, calls/s, errors/s,
  p50/p99 over the last minute, 15 minutes of history;
- ``service(store, name)``: the same for one service plus its methods (``_info`` docs and
  schemas, per-method rates, latency, codes);
- ``trace(store, correlation_id)``: every recorded call of one request as waterfall rows;
- ``failures(store)``: the most recent failed calls;
- ``events()``: event streams (length, consumer-group lag and pending), outbox backlog,
  dead letters (sync: the outbox uses a sync client and the database).
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from typing import Any

from servicebus.telemetry import store as keys
from servicebus.telemetry.records import decode_entry
from servicebus.telemetry.registry import INDEX_RETENTION
from servicebus.telemetry.stats import merge_sparse, quantile_ms
from servicebus.telemetry.store import Store

MAX_INSTANCES = 1000
STALE_BEATS = 2  # an instance whose last beat is older than this many intervals is stale


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def instances(store: Store) -> list[dict[str, Any]]:
    """Every registered instance's last heartbeat, with ``age`` (s) and ``stale``."""
    now = time.time()
    index = keys.key(store, keys.INSTANCES)
    ids = await store.command(
        index, "ZRANGEBYSCORE", index, now - INDEX_RETENTION, "+inf", "LIMIT", 0, MAX_INSTANCES
    )
    if not ids:
        return []
    bodies = await store.pipeline(
        index, [["GET", keys.key(store, keys.INSTANCE + _text(i))] for i in ids]
    )
    out = []
    for body in bodies:
        if body is None:  # expired: the instance is gone
            continue
        try:
            beat = json.loads(body)
        except ValueError:
            continue
        if not isinstance(beat, dict):
            continue
        beat["age"] = round(max(0.0, now - float(beat.get("ts", 0))), 3)
        beat["stale"] = beat["age"] > STALE_BEATS * float(beat.get("interval", 5.0))
        out.append(beat)
    return sorted(out, key=lambda b: (b.get("host", ""), b.get("pid", 0)))


def _instance_row(beat: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "instance": beat.get("instance"),
        "host": beat.get("host"),
        "pid": beat.get("pid"),
        "version": beat.get("version"),
        "uptime": round(float(beat.get("ts", 0)) - float(beat.get("started", 0)), 1),
        "age": beat["age"],
        "stale": beat["stale"],
        "in_flight": summary.get("in_flight", 0),
        "concurrency": summary.get("concurrency", 0),
        "calls_per_s": summary.get("calls_per_s", 0.0),
        "errors_per_s": summary.get("errors_per_s", 0.0),
        "p50_ms": summary.get("p50_ms"),
        "p99_ms": summary.get("p99_ms"),
    }


def _merge_history(histories: list[list[list[Any]]]) -> list[list[Any]]:
    # Points align on their start time; calls and errors add up, latencies take the max.
    merged: dict[float, list[Any]] = {}
    point: list[Any]
    for history in histories:
        for t, calls, errors, p50, p99 in history:
            point = merged.setdefault(t, [t, 0, 0, None, None])
            point[1] += calls
            point[2] += errors
            if p50 is not None:
                point[3] = max(float(p50), point[3] or 0.0)
            if p99 is not None:
                point[4] = max(float(p99), point[4] or 0.0)
    return [merged[t] for t in sorted(merged)]


def _service_entry(name: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    live = [(b, s) for b, s in pairs if not b["stale"]] or pairs
    hists = [m.get("hist", {}) for _, s in live for m in s.get("methods", {}).values()]
    merged = merge_sparse(hists)
    backlogs = [int(s["backlog"]) for _, s in live if s.get("backlog") is not None]
    capacities = [int(s["capacity"]) for _, s in live if s.get("capacity") is not None]
    return {
        "name": name,
        "channel": live[0][1].get("channel"),
        "instances": [_instance_row(b, s) for b, s in pairs],
        "backlog": max(backlogs) if backlogs else None,
        "capacity": max(capacities) if capacities else None,
        "in_flight": sum(s.get("in_flight", 0) for _, s in live),
        "concurrency": sum(s.get("concurrency", 0) for _, s in live),
        "calls_per_s": round(sum(s.get("calls_per_s", 0.0) for _, s in live), 3),
        "errors_per_s": round(sum(s.get("errors_per_s", 0.0) for _, s in live), 3),
        "p50_ms": quantile_ms(merged, 0.5),
        "p99_ms": quantile_ms(merged, 0.99),
        "history": _merge_history([s.get("history", []) for _, s in live]),
    }


def _by_service(beats: list[dict[str, Any]]) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    grouped: dict[str, list[tuple[dict[str, Any], Any]]] = defaultdict(list)
    for beat in beats:
        for name, summary in (beat.get("services") or {}).items():
            if isinstance(summary, dict):
                grouped[name].append((beat, summary))
    return grouped


async def overview(store: Store) -> dict[str, Any]:
    """``{"time", "services": [{"name", "channel", "instances", "backlog", "capacity", ...}]}``."""
    grouped = _by_service(await instances(store))
    return {
        "time": time.time(),
        "services": [_service_entry(name, grouped[name]) for name in sorted(grouped)],
    }


def _methods(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    per: dict[str, dict[str, Any]] = {}
    for beat, summary in pairs:
        if beat["stale"]:
            continue
        for name, m in (summary.get("methods") or {}).items():
            row = per.setdefault(
                name, {"count": 0, "codes": Counter(), "calls_per_s": 0.0, "errors_per_s": 0.0,
                       "hists": []}
            )  # fmt: skip
            row["count"] += m.get("count", 0)
            row["codes"].update(m.get("codes", {}))
            row["calls_per_s"] += m.get("calls_per_s", 0.0)
            row["errors_per_s"] += m.get("errors_per_s", 0.0)
            row["hists"].append(m.get("hist", {}))
    out = {}
    for name, row in per.items():
        hist = merge_sparse(row.pop("hists"))
        out[name] = {
            **row,
            "codes": dict(row["codes"]),
            "calls_per_s": round(row["calls_per_s"], 3),
            "errors_per_s": round(row["errors_per_s"], 3),
            "p50_ms": quantile_ms(hist, 0.5),
            "p99_ms": quantile_ms(hist, 0.99),
        }
    return out


async def service(
    store: Store, name: str, *, ask: bool = True, timeout: float = 2.0
) -> dict[str, Any]:
    """One service: its overview entry, methods with docs/schemas (``_info``) and figures.

    ``ask=False`` skips the ``_info`` call (methods then come from the recorded figures).
    """
    from servicebus.conf import request_channel

    pairs = _by_service(await instances(store)).get(name, [])
    entry = _service_entry(name, pairs) if pairs else {
        "name": name, "channel": request_channel(name), "instances": [], "backlog": None,
        "capacity": None, "history": [],
    }  # fmt: skip
    figures = _methods(pairs)
    info: dict[str, Any] | None = None
    info_error = None
    if ask:
        from servicebus.client import acall
        from servicebus.errors import ServiceBusError

        try:
            info = await acall(entry["channel"] or request_channel(name), "_info", timeout=timeout)
        except ServiceBusError as exc:
            info_error = f"{exc.code}: {exc.message}"
    described = {m["name"]: m for m in (info or {}).get("methods", []) if isinstance(m, dict)}
    methods = []
    for method in sorted(set(described) | set(figures)):
        d = described.get(method, {})
        methods.append(
            {
                "name": method,
                "doc": d.get("doc"),
                "request_schema": d.get("request_schema"),
                "response_schema": d.get("response_schema"),
                **figures.get(method, {"count": 0, "codes": {}, "calls_per_s": 0.0,
                                       "errors_per_s": 0.0, "p50_ms": None, "p99_ms": None}),
            }
        )  # fmt: skip
    return {**entry, "methods": methods, "info": info, "info_error": info_error}


async def records(store: Store, entries: int = 200) -> list[dict[str, Any]]:
    """Call records of the newest ``entries`` stream entries, newest first."""
    stream = keys.key(store, keys.CALLS)
    rows = await store.command(stream, "XREVRANGE", stream, "+", "-", "COUNT", entries)
    out: list[dict[str, Any]] = []
    for _id, flat in rows or []:
        fields = dict(zip(flat[::2], flat[1::2], strict=True)) if isinstance(flat, list) else flat
        out.extend(reversed(decode_entry(fields)))
    return out


async def trace(store: Store, correlation_id: str, *, entries: int = 2000) -> dict[str, Any]:
    """Every recorded call of ``correlation_id`` as waterfall rows (start order, depth)."""
    calls = [r for r in await records(store, entries) if r["correlation_id"] == correlation_id]
    calls.sort(key=lambda r: r["start"])
    if not calls:
        return {"correlation_id": correlation_id, "start": None, "duration_ms": 0, "calls": []}
    t0 = calls[0]["start"]
    by_id = {r["request_id"]: r for r in calls}

    def depth(row: dict[str, Any], seen: int = 0) -> int:
        parent = by_id.get(row["parent_id"])
        return 0 if parent is None or seen > 32 else 1 + depth(parent, seen + 1)

    rows = [
        {**r, "offset_ms": round((r["start"] - t0) * 1000, 3), "depth": depth(r),
         "ok": r["code"] == "ok"}
        for r in calls
    ]  # fmt: skip
    end = max(r["offset_ms"] + r["duration_ms"] for r in rows)
    return {"correlation_id": correlation_id, "start": t0, "duration_ms": end, "calls": rows}


async def failures(store: Store, *, limit: int = 50, entries: int = 500) -> list[dict[str, Any]]:
    """The most recent failed calls (newest first), each with its correlation ID."""
    return [r for r in await records(store, entries) if r["code"] != "ok"][:limit]


def events(*, max_streams: int = 200) -> dict[str, Any]:
    """Event streams with group lag/pending, the outbox backlog and dead letters (sync)."""
    from django.conf import settings

    if "servicebus.outbox" not in settings.INSTALLED_APPS:
        return {"streams": [], "outbox": None, "dead_letters": []}
    from servicebus.outbox.constants import DEADLETTER_STREAM_PREFIX, EVENT_STREAM_PREFIX
    from servicebus.outbox.relay import backlog
    from servicebus.outbox.transport import connect

    out: dict[str, Any] = {"streams": [], "outbox": None, "dead_letters": []}
    try:
        pending, oldest = backlog()
        out["outbox"] = {"pending": pending, "oldest_age": round(oldest, 3)}
    except Exception as exc:  # no outbox table in this database, or it is down
        out["outbox"] = {"error": repr(exc)}
    try:
        client = connect()
        for name in sorted(_scan(client, EVENT_STREAM_PREFIX, max_streams)):
            groups = [
                {"name": g.get("name"), "consumers": g.get("consumers"),
                 "pending": g.get("pending"), "lag": g.get("lag")}
                for g in client.xinfo_groups(name)
            ]  # fmt: skip
            out["streams"].append(
                {"topic": name[len(EVENT_STREAM_PREFIX) :], "stream": name,
                 "length": client.xlen(name), "groups": groups}
            )  # fmt: skip
        for name in sorted(_scan(client, DEADLETTER_STREAM_PREFIX, max_streams)):
            out["dead_letters"].append(
                {"topic": name[len(DEADLETTER_STREAM_PREFIX) :], "stream": name,
                 "count": client.xlen(name)}
            )  # fmt: skip
        client.close()
    except Exception as exc:
        out["error"] = f"events Redis unavailable: {exc!r}"
    return out


def _scan(client: Any, prefix: str, limit: int) -> list[str]:
    found: list[str] = []
    for name in client.scan_iter(match=prefix + "*", count=500, _type="STREAM"):
        found.append(_text(name))
        if len(found) >= limit:
            break
    return found
