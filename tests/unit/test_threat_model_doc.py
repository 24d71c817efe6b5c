"""docs/threat-model.md points every claim at a test: each test it names exists, so that no claim silently loses
the test that checks it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[([^`]+)\])?`")


def references() -> list[tuple[str, str, str | None]]:
    return REFERENCE.findall((ROOT / "docs" / "threat-model.md").read_text())


def test_the_threat_model_names_tests_for_its_claims():
    assert len(references()) >= 40


def test_every_test_the_threat_model_names_exists():
    missing = []
    for path, name, case in references():
        source = (ROOT / path).read_text() if (ROOT / path).is_file() else ""
        functions = {node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
        if name not in functions or (case and f'"{case}"' not in source):
            missing.append(f"{path}::{name}" + (f"[{case}]" if case else ""))
    assert not missing, "docs/threat-model.md names tests that do not exist: " + ", ".join(missing)
