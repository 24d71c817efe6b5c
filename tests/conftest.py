"""Shared test helpers: where the interop data lives and a fixed clock; the fixtures that several folders share
(tests/support/fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.support.fixtures"]

DATA = Path(__file__).resolve().parent / "data"

# 2020-04-02 00:00:00 UTC, the day of Google's GAEN test vectors: interval 2642976. Tests use fixed times only.
VECTOR_DAY_START = 1585785600


@pytest.fixture
def data_dir() -> Path:
    return DATA
