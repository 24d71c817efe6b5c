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


def relative_imports(path: Path) -> set[str]:
    """The modules of the package that ``path`` imports, as dotted names below ``matcher``."""
    package = path.relative_to(SERVICE.parent).with_suffix("").parts[:-1]
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            names = [node.module] if node.module else [alias.name for alias in node.names]
            modules.update(".".join([*base, name]) for name in names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_the_store_contract_imports_no_backend():
    """A backend implements the contract (store/base.py); only the package's open_store picks one."""
    imported = relative_imports(SERVICE / "store" / "base.py")
    assert not {m for m in imported if m.startswith(("matcher.store.sqlite", "matcher.store.redis", "redis"))}


def test_the_settings_do_not_import_the_publisher():
    """The settings (config.py) sit below what they configure: the publisher takes its defaults from below both."""
    imported = relative_imports(SERVICE / "config.py")
    assert not {m for m in imported if m.startswith(("matcher.publisher", "matcher.server", "matcher.cli"))}


def test_neither_the_clients_nor_the_benchmarks_import_the_tests():
    # What they share with the tests (the launcher of `matcher serve`, a redis-server) lives in clients/.
    root = SERVICE.parent
    offenders = {
        str(path.relative_to(root)): sorted(m for m in imported_modules(path) if m.split(".")[0] == "tests")
        for folder in ("clients", "bench")
        for path in sorted((root / folder).rglob("*.py"))
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}
