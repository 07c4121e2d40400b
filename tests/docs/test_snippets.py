"""Every ```python block in README.md and docs/ runs (see tests/docs/snippets.py for how).

Each page runs once, in its own process; each block is reported as its own test, named
``page:line``. A block that cannot run here is marked in the page with
``<!-- no-run: reason -->`` (it is still compiled).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.docs.snippets import ROOT, Block, pages, parse

PAGES = pages()
BLOCKS = [block for page in PAGES for block in parse(page)]
_results: dict[str, list[dict[str, Any]]] = {}


def page_results(page: str, tmp_dir: Path) -> list[dict[str, Any]]:
    """Run ``page`` in a subprocess once; its results by block, then the teardown."""
    if page not in _results:
        out = tmp_dir / "results.json"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "tests.docs.snippets", str(ROOT / page), str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0 or not out.exists():
            pytest.fail(f"running {page} failed:\n{done.stdout}\n{done.stderr}")
        _results[page] = json.loads(out.read_text())
    return _results[page]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_snippet(block: Block, tmp_path: Path) -> None:
    results = page_results(block.page, tmp_path)
    (result,) = [r for r in results if r["line"] == block.line]
    assert result["status"] == "passed", f"{block.id}\n{result.get('error')}{result['output']}"


@pytest.mark.parametrize("page", sorted({b.page for b in BLOCKS}))
def test_page_stops_what_it_served(page: str, tmp_path: Path) -> None:
    (teardown,) = [r for r in page_results(page, tmp_path) if r["kind"] == "teardown"]
    assert teardown["status"] == "passed", teardown.get("error")


def test_no_run_markers_give_a_reason() -> None:
    for block in BLOCKS:
        if block.kind == "compile":
            assert len(block.reason) > 10, f"{block.id}: say why it cannot run"
