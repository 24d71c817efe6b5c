"""Fixtures of the fault tests: a PKI whose authority is not rate-limited, and a store on each backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import redis_server, store_url  # noqa: F401 - the same stores as the service tests
from tests.support.pki import pki_with


@pytest.fixture(scope="session")
def fault_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pki_with(tmp_path_factory.mktemp("fault-pki") / "tls", "ha-north")
