"""Fixtures of the fault tests: a PKI whose authority is not rate-limited (the stores: tests/support/fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.launch import pki_with


@pytest.fixture(scope="session")
def fault_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pki_with(tmp_path_factory.mktemp("fault-pki") / "tls", "ha-north")
