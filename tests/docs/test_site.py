"""The documentation site builds with warnings as errors, and fetches nothing to do so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from mkdocs_hooks import expand_nav, on_config  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_every_reference_page_is_built(site: Path) -> None:
    for page in ("reference/api", "reference/settings", "reference/commands/runworker"):
        assert (site / page / "index.html").is_file(), page
    api = (site / "reference" / "api" / "index.html").read_text()
    assert "Service" in api and "doc-heading" in api  # mkdocstrings rendered the docstrings


def test_the_site_loads_nothing_from_other_hosts(site: Path) -> None:
    # No web fonts, analytics or CDN scripts: the site works offline.
    for page in site.rglob("*.html"):
        text = page.read_text()
        for needle in ("fonts.googleapis", "googletagmanager", "google-analytics", "cdn."):
            assert needle not in text, f"{page.relative_to(site)} loads {needle}"


def test_a_folder_in_the_nav_expands_and_unlisted_pages_are_kept(tmp_path: Path) -> None:
    for name in ("a.md", "ref/cmd/x.md", "ref/cmd/b.md", "new.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("# t\n")
    nav, named = expand_nav([{"Home": "a.md"}, {"Ref": [{"Commands": "ref/cmd/"}]}], tmp_path)
    assert nav == [{"Home": "a.md"}, {"Ref": [{"Commands": ["ref/cmd/b.md", "ref/cmd/x.md"]}]}]
    assert named == {"a.md", "ref/cmd/b.md", "ref/cmd/x.md"}
    config = SimpleNamespace(docs_dir=str(tmp_path), nav=[{"Home": "a.md"}])
    assert on_config(config).nav[-1] == {"More": ["new.md", "ref/cmd/b.md", "ref/cmd/x.md"]}
