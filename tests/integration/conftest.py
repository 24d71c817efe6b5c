"""Fixtures for the real service: a development PKI from `matcher certs`, and `matcher serve` on each store
(store_url: tests/support/fixtures.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.launch import Server, authorities_file, make_pki
from tests.integration.harness import NOW, start_server


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ha-north may do everything for VN, the configuration included; ha-south only CONFIRMED_TEST for TH, two submissions a minute and no
    configuration changes; ha-revoked holds a valid certificate but is not in the authorities file."""
    folder = make_pki(tmp_path_factory.mktemp("pki") / "tls", "ha-north", "ha-south", "ha-revoked")
    policies = json.loads(authorities_file(folder).read_text())
    policies["authorities"]["ha-north"]["report_types"].append("SELF_REPORT")
    policies["authorities"]["ha-north"]["may_set_config"] = True  # granted explicitly: `matcher certs` does not
    policies["authorities"]["ha-south"].update(
        regions=["TH"], report_types=["CONFIRMED_TEST"], may_set_config=False, submissions_per_minute=2
    )
    del policies["authorities"]["ha-revoked"]
    authorities_file(folder).write_text(json.dumps(policies))
    return folder


@pytest.fixture
def server(pki: Path, store_url: str, tmp_path: Path) -> Iterator[Server]:
    running = start_server(
        pki, store_url, "--now", str(NOW), "--metrics-listen", "127.0.0.1:0", log=tmp_path / "serve.log"
    )
    yield running
    running.stop()
