"""Per-process call statistics: counts by outcome code, p50/p99 over a sliding window.

Cheap by construction: a hook call only appends the finished call to a queue (no lock,
no allocation); the queue is folded into fixed latency buckets in time-slotted rings in
batches (a bisect and a few increments per call, no per-call sort) when it grows or when
someone reads; quantiles are read from the buckets when someone asks (``_stats``, the
heartbeat, a Prometheus scrape).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import Counter, deque
from typing import Any

from servicebus.telemetry import labels
from servicebus.telemetry.identity import STARTED, instance_id
from servicebus.telemetry.types import CallInfo

# Bucket upper bounds in seconds: 100 µs to ~100 s, each 25 % wider than the last, so a
# quantile read from them is within 25 % of the true value.
BOUNDS: tuple[float, ...] = tuple(1e-4 * 1.25**i for i in range(62))
NBUCKETS = len(BOUNDS) + 1  # the last one holds anything slower
WINDOW_STEP, WINDOW_SLOTS = 10.0, 6  # p50/p99 and rates over the last minute
HISTORY_STEP, HISTORY_POINTS = 15.0, 60  # sparklines: 15 minutes in 15 s points
SNAPSHOT_TTL = 0.5  # `_stats` reuses a snapshot this young: a flood costs one build per TTL
FOLD_EVERY = 512  # finished calls queued before the hook folds them in itself


def bucket_of(duration: float) -> int:
    """Index of the latency bucket ``duration`` (seconds) falls in."""
    return bisect_left(BOUNDS, duration)


def quantile_ms(hist: list[int] | dict[str, int], q: float) -> float | None:
    """The ``q`` quantile in ms (a bucket's upper bound) of a histogram; None when empty.

    ``hist`` is a list of bucket counts or a sparse ``{"bucket index": count}`` dict.
    """
    if isinstance(hist, dict):
        items = sorted((int(k), int(n)) for k, n in hist.items())
    else:
        items = list(enumerate(hist))
    total = sum(n for _, n in items)
    if total == 0:
        return None
    target, seen = q * total, 0
    for index, n in items:
        seen += n
        if n and seen >= target:
            return round(BOUNDS[min(index, len(BOUNDS) - 1)] * 1000, 3)
    return round(BOUNDS[-1] * 1000, 3)  # pragma: no cover - seen reaches total above


def sparse(hist: list[int]) -> dict[str, int]:
    """A histogram as ``{"bucket index": count}`` without the empty buckets (str keys: JSON)."""
    return {str(i): n for i, n in enumerate(hist) if n}


def merge_sparse(hists: list[dict[str, int]]) -> dict[str, int]:
    """The sum of sparse histograms (several instances, several methods)."""
    merged: Counter[str] = Counter()
    for h in hists:
        for k, n in h.items():
            merged[str(k)] += int(n)
    return dict(merged)


class Ring:
    """Calls, errors and a latency histogram in ``size`` time slots of ``step`` seconds."""

    __slots__ = ("calls", "epochs", "errors", "hist", "method", "size", "step")

    def __init__(self, step: float, size: int, method: str = "") -> None:
        self.step, self.size = step, size
        self.method = method  # the method label whose calls it counts (if one)
        self.epochs = [-1] * size
        self.calls = [0] * size
        self.errors = [0] * size
        self.hist = [[0] * NBUCKETS for _ in range(size)]

    def add(self, now: float, bucket: int, error: bool) -> None:
        """Count one call that ended at ``now``."""
        epoch = int(now // self.step)
        i = epoch % self.size
        if self.epochs[i] != epoch:  # the slot held an older period: reuse it
            self.epochs[i] = epoch
            self.calls[i] = self.errors[i] = 0
            self.hist[i] = [0] * NBUCKETS
        self.calls[i] += 1
        self.errors[i] += error
        self.hist[i][bucket] += 1

    def _live(self, now: float) -> list[int]:
        current = int(now // self.step)
        return [i for i, e in enumerate(self.epochs) if current - self.size < e <= current]

    def totals(self, now: float) -> tuple[int, int, list[int]]:
        """(calls, errors, merged histogram) over the slots still inside the window."""
        calls = errors = 0
        merged = [0] * NBUCKETS
        for i in self._live(now):
            calls += self.calls[i]
            errors += self.errors[i]
            merged = [a + b for a, b in zip(merged, self.hist[i], strict=True)]
        return calls, errors, merged

    def points(self, now: float) -> list[list[float | None]]:
        """[start, calls, errors, p50_ms, p99_ms] per slot, oldest first, gaps as zeros."""
        current = int(now // self.step)
        by_epoch = {self.epochs[i]: i for i in self._live(now)}
        out: list[list[float | None]] = []
        for epoch in range(current - self.size + 1, current + 1):
            i = by_epoch.get(epoch)
            if i is None:
                out.append([epoch * self.step, 0, 0, None, None])
            else:
                h = self.hist[i]
                out.append(
                    [epoch * self.step, self.calls[i], self.errors[i], quantile_ms(h, 0.5),
                     quantile_ms(h, 0.99)]
                )  # fmt: skip
        return out


class ServiceStats:
    """What one process knows about one service it serves (and the calls it makes)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.concurrency = 0
        self.codes: dict[str, Counter[str]] = {}
        self.windows: dict[str, Ring] = {}
        self.history = Ring(HISTORY_STEP, HISTORY_POINTS)
        # Since start, per method: latency bucket counts and total seconds (Prometheus).
        self.latency: dict[str, list[int]] = {}
        self.seconds: dict[str, float] = {}


class Stats:
    """The stats hook: server/client outcomes, in-flight, drops; thread-safe.

    The hook methods append to queues (``deque.append`` is atomic); ``_fold`` turns the
    queues into the figures, under the lock, before anything is read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.services: dict[str, ServiceStats] = {}
        self.calls: Counter[tuple[str, str, str]] = Counter()
        # Calls this process made, per (service, method): latency buckets and total seconds.
        self.call_latency: dict[tuple[str, str], list[int]] = {}
        self.call_seconds: dict[tuple[str, str], float] = {}
        self.drops: Counter[str] = Counter()
        self.backlog: dict[str, int] = {}
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._started: deque[str] = deque()  # services of requests started
        # (service, method, code, started, duration) of requests handled and calls made:
        # tuples of str/float, which the garbage collector stops tracking (CallInfo objects
        # held until a fold would survive collections and be promoted, at a cost).
        self._ended: deque[tuple[str, str, str, float, float]] = deque()
        self._made: deque[tuple[str, str, str, float, float]] = deque()
        # (service, method, code) as given -> where they are counted (see _target).
        self._targets: dict[
            tuple[str, str, str], tuple[ServiceStats, Counter[str], str, list[int], Ring]
        ] = {}
        self._call_targets: dict[tuple[str, str, str], tuple[tuple[str, str, str], list[int]]] = {}

    def _service(self, name: str) -> ServiceStats:
        svc = self.services.get(name)
        if svc is None:
            svc = self.services[name] = ServiceStats()
        return svc

    def set_concurrency(self, service: str, concurrency: int) -> None:
        """Record how many requests of ``service`` this process handles at once."""
        with self._lock:
            self._service(service).concurrency = concurrency

    def set_backlog(self, channel: str, waiting: int) -> None:
        """Record how many messages wait in a request channel (the heartbeat measures it)."""
        with self._lock:
            self.backlog[channel] = waiting

    def export(self) -> dict[str, Any]:
        """A consistent copy of the since-start figures (the Prometheus collector reads it)."""
        with self._lock:
            self._fold()
            return {
                "services": {
                    name: {
                        "in_flight": svc.in_flight,
                        "concurrency": svc.concurrency,
                        "codes": {m: dict(c) for m, c in svc.codes.items()},
                        "latency": {m: list(h) for m, h in svc.latency.items()},
                        "seconds": dict(svc.seconds),
                    }
                    for name, svc in self.services.items()
                },
                "calls": dict(self.calls),
                "call_latency": {k: list(h) for k, h in self.call_latency.items()},
                "call_seconds": dict(self.call_seconds),
                "drops": dict(self.drops),
                "backlog": dict(self.backlog),
            }

    # -- hook methods (servicebus.hooks) ---------------------------------------------
    def server_start(self, info: CallInfo) -> None:
        """A request starts: one more in flight."""
        self._started.append(info.service)

    def server_end(self, info: CallInfo) -> None:
        """A request ended: its outcome and latency are counted at the next fold."""
        ended = self._ended
        ended.append((info.service, info.method, info.code, info.started, info.duration))
        if len(ended) >= FOLD_EVERY:
            with self._lock:
                self._fold()

    def client_end(self, info: CallInfo) -> None:
        """A call this process made ended: counted by outcome at the next fold."""
        made = self._made
        made.append((info.service, info.method, info.code, info.started, info.duration))
        if len(made) >= FOLD_EVERY:
            with self._lock:
                self._fold()

    def dropped(self, reason: str, where: str, count: int) -> None:
        """The bus dropped ``count`` messages for ``reason``."""
        with self._lock:
            self.drops[labels.reason_label(reason)] += count

    def _fold(self) -> None:
        """Count the queued starts and ends into the figures (caller holds the lock)."""
        starts, ended, made = self._started, self._ended, self._made
        while starts:
            self._service(starts.popleft()).in_flight += 1
        targets = self._targets
        if len(targets) > 4 * labels.MAX_METHODS:  # raw names come from the wire: bounded
            targets.clear()
        while ended:
            service, method, raw_code, started, duration = ended.popleft()
            raw = (service, method, raw_code)
            target = targets.get(raw)
            if target is None:
                target = targets[raw] = self._target(*raw)
            svc, counts, code, latency, window = target
            bucket = bisect_left(BOUNDS, duration)
            now = started + duration
            error = raw_code != "ok"
            svc.in_flight -= 1
            counts[code] += 1
            latency[bucket] += 1
            svc.seconds[window.method] += duration
            window.add(now, bucket, error)
            svc.history.add(now, bucket, error)
        calls = self._call_targets
        if len(calls) > 4 * labels.MAX_METHODS:
            calls.clear()
        while made:
            service, method, raw_code, _, duration = made.popleft()
            raw = (service, method, raw_code)
            found = calls.get(raw)
            if found is None:
                found = calls[raw] = self._call_target(*raw)
            key, hist = found
            self.calls[key] += 1
            hist[bisect_left(BOUNDS, duration)] += 1
            self.call_seconds[key[:2]] += duration

    def _call_target(
        self, service: str, raw_method: str, raw_code: str
    ) -> tuple[tuple[str, str, str], list[int]]:
        """(series key, latency buckets) of the calls made to (service, method) with code."""
        method = labels.method_label(service, raw_method, raw_code)
        hist = self.call_latency.get((service, method))
        if hist is None:
            hist = self.call_latency[(service, method)] = [0] * NBUCKETS
            self.call_seconds[(service, method)] = 0.0
        return (service, method, labels.code_label(raw_code)), hist

    def _target(
        self, service: str, raw_method: str, raw_code: str
    ) -> tuple[ServiceStats, Counter[str], str, list[int], Ring]:
        """Where the calls of (service, method, code) are counted, by their bounded labels."""
        method = labels.method_label(service, raw_method, raw_code)
        svc = self._service(service)
        counts = svc.codes.get(method)
        if counts is None:
            counts = svc.codes[method] = Counter()
            svc.windows[method] = Ring(WINDOW_STEP, WINDOW_SLOTS, method)
            svc.latency[method] = [0] * NBUCKETS
            svc.seconds[method] = 0.0
        return svc, counts, labels.code_label(raw_code), svc.latency[method], svc.windows[method]

    # -- reading ---------------------------------------------------------------------
    def snapshot(
        self, service: str, now: float | None = None, fresh: bool = False
    ) -> dict[str, Any]:
        """The ``_stats`` body for ``service``; reused for SNAPSHOT_TTL s unless ``fresh``."""
        now = time.time() if now is None else now
        cached = self._cache.get(service)
        if not fresh and cached is not None and 0 <= now - cached[0] < SNAPSHOT_TTL:
            return cached[1]
        with self._lock:
            self._fold()
            body = self._build(service, now)
        self._cache[service] = (now, body)
        return body

    def _build(self, service: str, now: float) -> dict[str, Any]:
        svc = self.services.get(service) or ServiceStats()
        span = max(1.0, min(now - STARTED, WINDOW_STEP * WINDOW_SLOTS))
        methods: dict[str, Any] = {}
        total_calls = total_errors = 0
        merged = [0] * NBUCKETS
        for name, counts in sorted(svc.codes.items()):
            calls, errors, hist = svc.windows[name].totals(now)
            total_calls += calls
            total_errors += errors
            merged = [a + b for a, b in zip(merged, hist, strict=True)]
            methods[name] = {
                "count": sum(counts.values()),
                "codes": dict(counts),
                "calls_per_s": round(calls / span, 3),
                "errors_per_s": round(errors / span, 3),
                "p50_ms": quantile_ms(hist, 0.5),
                "p99_ms": quantile_ms(hist, 0.99),
                # Sparse last-minute histogram: lets readers merge instances exactly.
                "hist": sparse(hist),
            }
        return {
            "service": service,
            "instance": instance_id(),
            "uptime": round(now - STARTED, 3),
            "in_flight": svc.in_flight,
            "concurrency": svc.concurrency,
            "calls_per_s": round(total_calls / span, 3),
            "errors_per_s": round(total_errors / span, 3),
            "p50_ms": quantile_ms(merged, 0.5),
            "p99_ms": quantile_ms(merged, 0.99),
            "methods": methods,
            "history": svc.history.points(now),
            "dropped": dict(self.drops),
        }

    def reset(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._started.clear()
            self._ended.clear()
            self._made.clear()
            self._targets.clear()
            self._call_targets.clear()
            self.services.clear()
            self.calls.clear()
            self.call_latency.clear()
            self.call_seconds.clear()
            self.drops.clear()
            self.backlog.clear()
            self._cache.clear()


stats = Stats()
