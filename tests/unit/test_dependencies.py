"""Dependencies are exactly the tested ones, and the service carries only what it runs on.

Every make target installs requirements.lock with --require-hashes, so a fresh clone gets the versions the tests
passed with, each file checked; these tests keep the lock in step with pyproject.toml, and keep the code generator,
plotting and terminal libraries out of the service's runtime dependencies (they are extras for the simulator,
the benchmarks and the authority's client)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NOT_AT_RUNTIME = {"grpcio-tools", "matplotlib", "rich"}
# Code the service and the phone library run, installed by the runtime dependencies alone.
RUNTIME_CODE = ["matcher", "clients/phone"]
FIRST_PARTY = {"matcher", "clients", "exposure"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return canonical(match.group())


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes), from requirements.lock's `name==version \\ --hash=sha256:...` entries."""
    entries: dict[str, tuple[str, list[str]]] = {}
    text = (ROOT / "requirements.lock").read_text()
    for entry in re.split(r"\n(?=[A-Za-z])", re.sub(r"(?m)^\s*#.*\n", "", text)):
        head = re.match(r"([A-Za-z0-9._-]+)==(\S+)", entry)
        if head:
            entries[canonical(head.group(1))] = (head.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))
    return entries


def test_every_dependency_and_extra_is_pinned_in_the_lock_with_hashes():
    project = PYPROJECT["project"]
    declared = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    lock = locked()
    missing = sorted({requirement_name(r) for r in declared} - set(lock))
    assert not missing, f"not in requirements.lock (run make lock): {missing}"
    unhashed = sorted(name for name, (_, hashes) in lock.items() if not hashes)
    assert not unhashed, f"locked without a hash: {unhashed}"


def test_the_lock_holds_the_versions_installed_here():
    """What the tests run on is what the lock says (make installs the lock, and reinstalls when it changes)."""
    stale = {}
    for name, (version, _) in locked().items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # pip and setuptools of the venv itself, or a platform-specific package
        if installed != version:
            stale[name] = (version, installed)
    assert not stale, f"installed versions differ from requirements.lock (locked, installed): {stale}"


def test_every_make_target_installs_from_the_lock_with_hashes_required():
    makefile = (ROOT / "Makefile").read_text()
    installs = re.findall(r"pip install[^\n]*", makefile)
    assert installs, "the Makefile installs nothing"
    for line in installs:
        assert "--require-hashes -r requirements.lock" in line or "--no-deps" in line, line


def test_the_code_generator_plotting_and_terminal_libraries_are_not_runtime_dependencies():
    runtime = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert runtime & NOT_AT_RUNTIME == set()


def imported_top_levels(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_service_and_the_phone_import_only_what_the_runtime_dependencies_install():
    runtime = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    # what the runtime dependencies pull in themselves (grpcio-status brings googleapis-common-protos, ...)
    reachable = set(runtime)
    frontier = list(runtime)
    while frontier:
        try:
            requirements = importlib.metadata.requires(frontier.pop()) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # required only under a marker that does not hold here (an older Python)
        for requirement in requirements:
            if "extra ==" in requirement:
                continue
            name = requirement_name(requirement)
            if name not in reachable:
                reachable.add(name)
                frontier.append(name)
    providers = importlib.metadata.packages_distributions()
    outside = {}
    for folder in RUNTIME_CODE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module in imported_top_levels(path) - FIRST_PARTY - set(sys.stdlib_module_names):
                distributions = {canonical(d) for d in providers.get(module, [module])}
                if not distributions & reachable:
                    outside.setdefault(str(path.relative_to(ROOT)), []).append(module)
    assert outside == {}, f"imports that need more than the runtime dependencies: {outside}"
