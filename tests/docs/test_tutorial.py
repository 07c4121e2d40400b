"""Follow docs/tutorial.md step by step in a temporary directory, as a reader would.

The files are the tutorial's own titled blocks (so they cannot drift) and the commands are
its ```sh lines, each run for real: startproject, startapp, check, a redis-server (a
private one on a free port), runworker and daphne (free ports), curl (the ```json block
after it is the answer), pytest. A command this test does not know fails it, so a step
added to the tutorial must be taught here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.docs.snippets import ROOT, Fence, fences
from tests.support.processes import ManagedProcess
from tests.support.redis_server import RedisServer, free_port, wait_port

pytestmark = pytest.mark.e2e

TUTORIAL = ROOT / "docs" / "tutorial.md"
STEP_TIMEOUT = 120.0


class Reader:
    """Runs the tutorial's steps in ``home``; keeps the processes it started."""

    def __init__(self, home: Path) -> None:
        self.cwd = home
        # The reader's shell: this interpreter's environment first on PATH, and none of the
        # test session's Django settings or import paths.
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH") and not k.startswith("PYTEST_")
        }
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["PYTHONUNBUFFERED"] = "1"
        self.ports: dict[str, int] = {}  # the tutorial's port -> the one used here
        self.procs: dict[str, ManagedProcess] = {}
        self.redis: RedisServer | None = None
        self.log: list[str] = []

    # --- files -------------------------------------------------------------------------

    def write(self, fence: Fence) -> None:
        """A titled block: settings are appended (the tutorial says "add"), others replace."""
        path = self.cwd / fence.title
        path.parent.mkdir(parents=True, exist_ok=True)
        if fence.title.endswith("settings.py"):
            assert path.exists(), f"{fence.title} should exist before the tutorial adds to it"
            path.write_text(path.read_text() + "\n" + fence.source)
        else:
            path.write_text(fence.source)
        self.log.append(f"wrote {fence.title}")

    # --- commands ------------------------------------------------------------------------

    def run(self, line: str, expected: Fence | None) -> None:
        """One command line of a ```sh block; ``expected`` is the block shown after it."""
        args = shlex.split(line, comments=True)
        if not args:
            return
        self.log.append(f"$ {line}")
        head = args[0]
        if (head == "python" and args[1:3] == ["-m", "venv"]) or head in (".", "source"):
            return  # this test runs in the environment it was started in
        if head == "pip" and args[1] == "install":
            return self.check_installed(args[2:])
        if head == "cd":
            self.cwd = self.cwd / args[1]
            return
        if head == "redis-server":
            return self.start_redis()
        if head == "daphne":
            return self.start_daphne(args)
        if head == "curl":
            return self.curl(args, expected)
        if args[:3] == ["python", "manage.py", "runworker"]:
            return self.start_worker(args, expected)
        if head in ("django-admin", "python"):
            return self.run_to_end(args, expected)
        pytest.fail(f"the tutorial runs {line!r}, which this test does not know how to follow")

    def check_installed(self, requirements: list[str]) -> None:
        """pip install: what it names (with extras) must be installed here."""
        for text in requirements:
            req = Requirement(text)
            dist = metadata.distribution(req.name)
            for extra in req.extras:
                assert extra in (dist.metadata.get_all("Provides-Extra") or []), text
                for needed in dist.requires or []:
                    need = Requirement(needed)
                    if need.marker and need.marker.evaluate({"extra": extra}):
                        metadata.distribution(need.name)  # raises if it is not installed

    def run_to_end(self, args: list[str], expected: Fence | None) -> None:
        done = subprocess.run(
            args,
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{shlex.join(args)} exited {done.returncode}:\n{output}"
        if expected is not None:
            assert expected.source.strip() in output, output

    def start_redis(self) -> None:
        self.redis = RedisServer().start()
        self.env["REDIS_URL"] = self.redis.url  # the tutorial's settings read it

    def background(self, name: str, args: list[str], ready: str | None) -> ManagedProcess:
        proc = ManagedProcess(args, cwd=self.cwd, name=name)
        proc.env = dict(self.env)  # exactly the reader's shell, not this test's
        self.procs[name] = proc.start(ready=ready, timeout=60)
        return proc

    def start_worker(self, args: list[str], expected: Fence | None) -> None:
        assert self.redis is not None, "the tutorial starts the worker before Redis"
        ready = "worker serving"
        if expected is not None:  # the log line the tutorial shows, after its "..."
            ready = expected.source.strip().split("servicebus.worker: ", 1)[-1]
        self.background("runworker", args, ready)

    def start_daphne(self, args: list[str]) -> None:
        i = args.index("-p") + 1
        port = free_port()
        self.ports[args[i]] = port
        args = [*args[:i], str(port), *args[i + 1 :]]
        self.background("daphne", args, None)
        wait_port(port, timeout=60)

    def curl(self, args: list[str], expected: Fence | None) -> None:
        (url,) = [a for a in args[1:] if not a.startswith("-")]
        url = re.sub(r":(\d+)/", lambda m: f":{self.ports[m.group(1)]}/", url)
        try:
            with urllib.request.urlopen(url, timeout=STEP_TIMEOUT) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:  # curl prints error bodies too
            body = exc.read()
        assert expected is not None and expected.lang == "json", "show curl's answer as json"
        assert json.loads(body) == json.loads(expected.source), body

    def stop(self) -> dict[str, int | None]:
        codes = {name: proc.stop() for name, proc in reversed(self.procs.items())}
        if self.redis is not None:
            self.redis.stop()
        return codes


def steps() -> Iterator[tuple[Fence, Fence | None]]:
    """Each block of the tutorial with the block right after it."""
    found = fences(TUTORIAL)
    for i, fence in enumerate(found):
        yield fence, found[i + 1] if i + 1 < len(found) else None


def test_every_python_block_is_a_file() -> None:
    # The test writes python blocks as files; an untitled one would be silently skipped.
    for fence in fences(TUTORIAL):
        if fence.lang == "python":
            assert fence.title, f"docs/tutorial.md:{fence.line}: give the block a title"


def test_the_tutorial_works_as_written(tmp_path: Path) -> None:
    reader = Reader(tmp_path)
    try:
        for fence, after in steps():
            if fence.title:
                reader.write(fence)
            elif fence.lang == "sh":
                lines = [ln for ln in fence.source.splitlines() if ln.strip()]
                for n, line in enumerate(lines):
                    shown = after if n == len(lines) - 1 and after and not after.title else None
                    shown = shown if shown is not None and shown.lang in ("text", "json") else None
                    reader.run(line, shown)
    finally:
        codes = reader.stop()
    # The worker drained and exited cleanly on SIGTERM; nothing crashed.
    assert codes.get("runworker") == 0, reader.procs["runworker"].output
    for name, proc in reader.procs.items():
        assert "Traceback" not in proc.output, f"{name}:\n{proc.output}"
    assert "$ python -m pytest" in reader.log  # the tutorial's own tests ran
