"""Start real runworker (and other manage.py) processes and read their logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class ManagedProcess:
    """A child process whose stdout+stderr lines are collected in ``lines``."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | str = ROOT,
        name: str = "proc",
    ) -> None:
        self.args = list(args)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cwd = str(cwd)
        self.name = name
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._changed = threading.Condition()

    def start(self, ready: str | None = None, timeout: float = 30.0) -> ManagedProcess:
        """Start; with ``ready``, wait until a log line contains it."""
        self.proc = subprocess.Popen(
            self.args,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if ready is not None:
            self.wait_for(ready, timeout)
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """Block until a line contains ``text``; return it (fail if the process exits)."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if text in line:
                        return line
                seen = len(self.lines)
                if (
                    self.proc is not None
                    and self.proc.poll() is not None
                    and seen == len(self.lines)
                ):
                    raise RuntimeError(
                        f"{self.name} exited ({self.proc.returncode}) before {text!r}:\n"
                        + self.output[-4000:]
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{self.name}: no {text!r} in {timeout}s:\n" + self.output[-4000:]
                    )
                self._changed.wait(min(left, 0.2))

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        return code

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.wait(timeout)


def runworker(
    channels: Sequence[str],
    *,
    redis_url: str | None = None,
    concurrency: int | None = None,
    layer: str = "servicebus",
    settings: str = "tests.project.settings",
    extra_env: dict[str, str] | None = None,
    name: str = "runworker",
    timeout: float = 30.0,
) -> ManagedProcess:
    """Start ``manage.py runworker`` and wait (``timeout`` s) until it serves.

    The test project's by default (``redis_url`` and ``layer`` are its SB_REDIS_URL and
    SB_LAYER); another project's with ``settings``, configured through ``extra_env``.
    """
    args = [sys.executable, "-m", "django", "runworker", *channels, "--settings", settings]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    env = {"SB_LAYER": layer, **(extra_env or {})}
    if redis_url is not None:
        env.setdefault("SB_REDIS_URL", redis_url)
    return ManagedProcess(args, env=env, name=name).start(ready="worker serving", timeout=timeout)


def daphne(port: int, project: str) -> list[str]:
    """The command of a daphne serving ``<project>.asgi:application`` on 127.0.0.1:``port``."""
    return [
        sys.executable, "-m", "daphne",
        # No access log: the edge logs every request with its correlation ID.
        "-v", "0",
        "-b", "127.0.0.1",
        "-p", str(port),
        f"{project}.asgi:application",
    ]  # fmt: skip


def run_benchmark(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks.<module> ARGS`` from the repository root, its output as text."""
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
