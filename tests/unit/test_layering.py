"""Dependencies point down: the service (matcher/) never imports its clients (clients/), so that it can be
installed, reviewed and run without them. ``make demo`` runs the simulator by its console script instead."""

from __future__ import annotations

import ast
from pathlib import Path

import matcher

SERVICE = Path(matcher.__file__).parent


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_no_module_of_the_service_imports_a_client():
    offenders = {
        str(path.relative_to(SERVICE.parent)): sorted(m for m in imported_modules(path) if m.split(".")[0] == "clients")
        for path in sorted(SERVICE.rglob("*.py"))
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}


def test_neither_the_clients_nor_the_benchmarks_import_the_tests():
    # What they share with the tests (the launcher of `matcher serve`, a redis-server) lives in clients/.
    root = SERVICE.parent
    offenders = {
        str(path.relative_to(root)): sorted(m for m in imported_modules(path) if m.split(".")[0] == "tests")
        for folder in ("clients", "bench")
        for path in sorted((root / folder).rglob("*.py"))
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}
