"""Each example service owns its code: none imports another's (they share only the bus)."""

from __future__ import annotations

import ast

import pytest

from tests.support.processes import ROOT

SERVICES = ("inventory", "pricing", "orders")


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_service_imports_no_other_service(service: str) -> None:
    others = {name for name in SERVICES if name != service}
    others |= {f"{name}_project" for name in others}
    for path in (ROOT / "services" / service).rglob("*.py"):
        assert not imported_modules(path) & others, f"{path} imports another service"
