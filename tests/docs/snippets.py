"""Run the ```python blocks of a Markdown page, in order, against the in-memory bus.

How a block is treated (the marker is always visible in the page):

- a plain ```python block runs in the page's namespace, shared by its blocks in order;
  top-level ``await`` runs on the loop where ``servicebus.call()`` and in-process workers
  run;
- ```python title="pkg/module.py" is a file: written under a temporary source root on
  ``sys.path`` and imported as ``pkg.module`` (shown again, it is appended and reloaded), so
  later blocks can import it as the reader's project would;
- ```python title="…settings.py" is a settings fragment: compiled, and the keys of a literal
  ``SERVICEBUS`` / ``SERVICEBUS_OUTBOX`` dict must be known settings;
- a block after ``<!-- no-run: reason -->`` (code that needs Redis or other processes) is
  compiled only.

Like the runworker the page tells the reader to start, every ``Service`` a block defines is
served in-process until the page ends; a Django model a block defines (in the page's
``docs`` app) gets its table. Each page runs in its own process (``python -m
tests.docs.snippets PAGE RESULT.json``) so registries, apps and threads never leak.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib
import inspect
import io
import json
import os
import re
import signal
import sys
import tempfile
import traceback
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)(?P<info>.*)$")
NO_RUN = re.compile(r"^\s*<!--\s*no-run:\s*(?P<reason>\S.*?)\s*-->\s*$")
TITLE = re.compile(r'title="(?P<title>[^"]+)"')
BLOCK_TIMEOUT = 60  # seconds; a call that is never answered times out well before
PAGE_MODULE = "tests.docs.snippet_app.page"  # models defined here belong to the "docs" app


@dataclasses.dataclass(frozen=True)
class Block:
    """One ```python block: where it is, what it says, how it is run."""

    page: str  # path relative to the repository
    line: int  # 1-based line of the first code line
    source: str
    kind: str  # "run", "module", "settings" or "compile"
    title: str = ""
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}" + ("" if self.kind == "run" else f"[{self.kind}]")


@dataclasses.dataclass(frozen=True)
class Fence:
    """Any fenced block of a page: its language, title, text and the marker before it."""

    lang: str
    title: str
    line: int  # 1-based line of the first text line
    source: str
    no_run: str  # the reason of a <!-- no-run: reason --> right before it, else ""


def fences(page: Path) -> list[Fence]:
    """Every fenced block of a Markdown file, in order (indentation of lists removed)."""
    lines = page.read_text().splitlines()
    found: list[Fence] = []
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        indent, ticks = opened["indent"], opened["ticks"]
        end = i + 1
        while end < len(lines):
            closing = FENCE.match(lines[end])
            if (
                closing
                and closing["ticks"][0] == ticks[0]
                and len(closing["ticks"]) >= len(ticks)
                and not closing["lang"]
                and not closing["info"].strip()
            ):
                break
            end += 1
        body = [ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[i + 1 : end]]
        before = i - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        no_run = NO_RUN.match(lines[before]) if before >= 0 else None
        title = TITLE.search(opened["info"])
        found.append(
            Fence(
                lang=opened["lang"],
                title=title["title"] if title else "",
                line=i + 2,
                source="\n".join(body) + "\n",
                no_run=no_run["reason"] if no_run else "",
            )
        )
        i = end + 1
    return found


def parse(page: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, with how each is to be run."""
    resolved = page.resolve()
    rel = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(page)
    blocks = []
    for f in fences(page):
        if f.lang not in ("python", "py"):
            continue
        if f.no_run:
            kind = "compile"
        elif f.title.endswith("settings.py"):
            kind = "settings"
        elif f.title.endswith(".py"):
            kind = "module"
        else:
            kind = "run"
        blocks.append(Block(rel, f.line, f.source, kind, f.title, f.no_run))
    return blocks


def pages() -> list[Path]:
    """README.md and every page under docs/ that holds a ```python block."""
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in found if parse(p)]


# --- the runner (in the page's own process) -----------------------------------------------


def _compile(block: Block) -> types.CodeType:
    # Padding keeps tracebacks' line numbers equal to the page's.
    return compile(
        "\n" * (block.line - 1) + block.source,
        str(ROOT / block.page),  # absolute pages stay absolute
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        dont_inherit=True,
    )


def check_settings(block: Block) -> None:
    """Compile a settings fragment; its literal servicebus dicts may hold known keys only."""
    _compile(block)
    from servicebus.conf import Settings
    from servicebus.outbox.settings import OutboxSettings

    known = {"SERVICEBUS": Settings, "SERVICEBUS_OUTBOX": OutboxSettings}
    for node in ast.walk(ast.parse(block.source)):
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Dict):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id in known:
                names = {f.name for f in dataclasses.fields(known[target.id])}
                for key in node.value.keys:
                    if isinstance(key, ast.Constant) and key.value not in names:
                        raise AssertionError(f"{target.id} has no key {key.value!r}")


class Page:
    """The state one page's blocks share: namespace, served services, written modules."""

    def __init__(self, src_root: Path, stack: contextlib.ExitStack) -> None:
        self.ns: dict[str, Any] = {"__name__": PAGE_MODULE}
        self.src_root = src_root
        self.stack = stack
        self.served: set[int] = set()
        self.modules: dict[str, types.ModuleType] = {}
        self.tables: set[str] = set()

    def run(self, block: Block) -> None:
        """Run one block the way its kind says."""
        if block.kind == "compile":
            _compile(block)
        elif block.kind == "settings":
            check_settings(block)
        elif block.kind == "module":
            self.import_module(block)
        else:
            self.execute(block)
        self.after()

    def execute(self, block: Block) -> None:
        code = _compile(block)
        if code.co_flags & inspect.CO_COROUTINE:
            from servicebus.bridge import bridge

            # Top-level await runs on the bridge loop, with the workers and call().
            bridge.run(types.FunctionType(code, self.ns)(), timeout=BLOCK_TIMEOUT)
        else:
            exec(code, self.ns)

    def import_module(self, block: Block) -> None:
        path = self.src_root / block.title
        name = block.title[: -len(".py")].replace("/", ".")
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        root = name.split(".")[0]
        existing = sys.modules.get(root)
        if existing is not None and root not in {m.split(".")[0] for m in self.modules}:
            where = getattr(existing, "__file__", None) or list(getattr(existing, "__path__", []))
            if not str(where).startswith(str(self.src_root)):
                raise AssertionError(f"title {block.title!r} collides with module {root!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        shown_before = name in self.modules
        with path.open("a" if shown_before else "w") as f:
            f.write(block.source)
        importlib.invalidate_caches()
        if shown_before:
            self.modules[name] = importlib.reload(self.modules[name])
        else:
            self.modules[name] = importlib.import_module(name)

    def after(self) -> None:
        """Serve new services, give new models their tables."""
        from servicebus import Service
        from servicebus.testing import serve_in_background

        scopes = [self.ns, *(vars(m) for m in self.modules.values())]
        for scope in scopes:
            for value in list(scope.values()):
                if isinstance(value, Service) and id(value) not in self.served:
                    self.served.add(id(value))
                    self.stack.enter_context(serve_in_background(value))
        from django.apps import apps
        from django.db import connection

        for model in apps.get_app_config("docs").get_models():
            table = model._meta.db_table
            if table not in self.tables and table not in connection.introspection.table_names():
                with connection.schema_editor() as editor:
                    editor.create_model(model)
            self.tables.add(table)


def _error() -> str:
    """The current exception's traceback from the page's code on (the runner's frames cut)."""
    kind, exc, tb = sys.exc_info()
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(kind, exc, tb))


def _alarm(signum: int, frame: Any) -> None:
    raise TimeoutError(f"a block ran longer than {BLOCK_TIMEOUT}s")


def run_page(page: Path) -> list[dict[str, Any]]:
    """Run every block of ``page``; one result dict per block, in order."""
    blocks = parse(page)
    work = Path(tempfile.mkdtemp(prefix="servicebus-snippets-"))
    src_root = work / "src"
    src_root.mkdir()
    sys.path.insert(0, str(src_root))
    os.environ["SERVICEBUS_SNIPPET_DB"] = str(work / "db.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.docs.snippet_settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)
    signal.signal(signal.SIGALRM, _alarm)
    results: list[dict[str, Any]] = []
    failed_at = 0
    stack = contextlib.ExitStack()
    try:
        state = Page(src_root, stack)
        for block in blocks:
            out = io.StringIO()
            result: dict[str, Any] = {"line": block.line, "kind": block.kind, "output": ""}
            signal.alarm(BLOCK_TIMEOUT + 5)
            try:
                with contextlib.redirect_stdout(out):
                    state.run(block)
                result["status"] = "passed"
            except BaseException:
                result["status"] = "failed"
                result["error"] = _error()
                if failed_at:
                    result["error"] += f"\n(an earlier block of this page failed, line {failed_at})"
                failed_at = failed_at or block.line
            finally:
                signal.alarm(0)
            result["output"] = out.getvalue()
            results.append(result)
    finally:
        teardown: dict[str, Any] = {"line": 0, "kind": "teardown", "output": ""}
        try:
            stack.close()  # stop the services the page served
            teardown["status"] = "passed"
        except BaseException:
            teardown.update(status="failed", error=_error())
        results.append(teardown)
    return results


def main(argv: list[str]) -> int:
    """``python -m tests.docs.snippets PAGE OUT.json``: run a page, write its results."""
    page, out = Path(argv[0]), Path(argv[1])
    sys.path.insert(0, str(ROOT))
    out.write_text(json.dumps(run_page(page)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
