"""MkDocs hooks for the servicebus site (mkdocs.yml ``hooks:``).

The nav in mkdocs.yml may name a folder (``reference/commands/``): it stands for every page
in it, in name order. A page that is in no section lands under "More", so a page another
helper adds shows up before anyone edits the nav (``--strict`` would fail on it otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def expand_nav(nav: list[Any], docs_dir: Path) -> tuple[list[Any], set[str]]:
    """Replace folder entries by their pages; return the new nav and every page it names."""
    named: set[str] = set()

    def walk(items: list[Any]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if isinstance(item, dict):
                ((title, value),) = item.items()
                if isinstance(value, list):
                    out.append({title: walk(value)})
                elif isinstance(value, str) and value.endswith("/"):
                    pages = _pages(docs_dir, docs_dir / value)
                    named.update(pages)
                    out.append({title: pages})  # untitled: each page's H1 titles it
                else:
                    named.add(value)
                    out.append(item)
            elif isinstance(item, str):
                named.add(item)
                out.append(item)
        return out

    return walk(nav), named


def _pages(docs_dir: Path, folder: Path) -> list[str]:
    """The pages under ``folder``, relative to ``docs_dir``, in name order."""
    return sorted(p.relative_to(docs_dir).as_posix() for p in folder.rglob("*.md") if p.is_file())


def on_config(config: Any) -> Any:
    """Expand folder entries in the nav and file unlisted pages under "More"."""
    if not config.nav:
        return config
    docs_dir = Path(config.docs_dir)
    nav, named = expand_nav(list(config.nav), docs_dir)
    more = [p for p in _pages(docs_dir, docs_dir) if p not in named]
    if more:
        nav.append({"More": more})
    config.nav = nav
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """The home page is README.md, whose links start at the repository root: rebase them."""
    if page.file.src_uri == "index.md" and markdown.strip() == '--8<-- "README.md"':
        readme = Path(config["config_file_path"]).parent / "README.md"
        return readme.read_text(encoding="utf-8").replace("](docs/", "](")
    return markdown
