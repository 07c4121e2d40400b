"""The snippet runner itself: markers, shared namespaces, served services, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.docs.snippets import ROOT, parse

PAGE = """# A page

```python
from servicebus import Request, Service

greeter = Service("greeter")


@greeter.method()
def hello(request: Request) -> str:
    return f"hello {request.body}"
```

Text between blocks.

```python
import servicebus

assert servicebus.call("greeter.request", "hello", "ada") == "hello ada"
```

```python
reply = await servicebus.acall("greeter.request", "hello", "bob")
assert reply == "hello bob"
```

```python title="shop/catalog.py"
PRICES = {"A1": 250}
```

```python
from shop.catalog import PRICES

assert PRICES["A1"] == 250
```

```python title="mysite/settings.py"
SERVICEBUS = {"SERVICE_NAME": "shop", "NO_SUCH_KEY": 1}
```

<!-- no-run: talks to a real Redis -->

```python
await servicebus.acall("elsewhere.request", "x")
```

- In a list:

    ```python
    from django.db import models


    class Note(models.Model):
        text = models.TextField()


    notes = Service("notes")


    @notes.method()
    def add(request: Request) -> int:  # runs in a worker thread: same database
        return Note.objects.create(text=request.body).pk
    ```

```python
assert servicebus.call("notes.request", "add", "hi") == 1
assert 1 == 2, "a wrong claim in the docs"
```
"""


def run(tmp_path: Path, text: str) -> list[dict[str, Any]]:
    page = tmp_path / "page.md"
    page.write_text(text)
    out = tmp_path / "out.json"
    subprocess.run(
        [sys.executable, "-m", "tests.docs.snippets", str(page), str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        timeout=120,
    )
    return json.loads(out.read_text())


def test_parse_kinds_and_lines(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    blocks = parse(page)
    assert [b.kind for b in blocks] == [
        "run",
        "run",
        "run",
        "module",
        "run",
        "settings",
        "compile",
        "run",
        "run",
    ]
    assert blocks[0].line == 4 and blocks[0].source.startswith("from servicebus import")
    assert blocks[6].reason == "talks to a real Redis"
    assert blocks[7].source.startswith("from django.db import models\n")  # list indent removed


def test_run_page_reports_each_block(tmp_path: Path) -> None:
    results = run(tmp_path, PAGE)
    status = [(r["kind"], r["status"]) for r in results]
    assert status == [
        ("run", "passed"),  # defines a service: served from here on
        ("run", "passed"),  # call() answered by it
        ("run", "passed"),  # top-level await on the bus's loop
        ("module", "passed"),
        ("run", "passed"),  # imports the module block
        ("settings", "failed"),  # unknown SERVICEBUS key
        ("compile", "passed"),
        ("run", "passed"),  # a model gets its table
        ("run", "failed"),  # the second assertion is false
        ("teardown", "passed"),
    ]
    assert "NO_SUCH_KEY" in results[5]["error"]
    wrong = results[8]["error"]
    assert "a wrong claim in the docs" in wrong
    line = PAGE.splitlines().index('assert 1 == 2, "a wrong claim in the docs"') + 1
    assert f'File "{tmp_path / "page.md"}", line {line}' in wrong  # the page's own line


def test_a_block_that_does_not_compile_fails_even_when_marked(tmp_path: Path) -> None:
    text = "<!-- no-run: needs Redis -->\n```python\nservicebus.call(x, *, y=1)\n```\n"
    result, _teardown = run(tmp_path, text)
    assert result["status"] == "failed" and "SyntaxError" in result["error"]
