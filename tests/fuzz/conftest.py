"""Fixtures of the hostile-input tests: a server on SQLite with a PKI of two authorities (one with every right,
one narrow) whose rate limits are out of the way, as is the phones' per-connection upload limit (the fuzzer's
phone is one connection), so that hostile requests reach validation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.launch import Server, pki_with
from tests.integration.harness import NOW, start_server

WIDE, NARROW = "ha-wide", "ha-narrow"


def _policies(policies: dict) -> None:
    policies[WIDE].update(
        regions=["VN", "TH"],
        report_types=["CONFIRMED_TEST", "CONFIRMED_CLINICAL_DIAGNOSIS", "SELF_REPORT"],
        may_set_config=True,
    )
    policies[NARROW].update(regions=["TH"], report_types=["CONFIRMED_TEST"], may_set_config=False)


@pytest.fixture(scope="session")
def fuzz_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pki_with(tmp_path_factory.mktemp("fuzz-pki") / "tls", WIDE, NARROW, edit=_policies)


@pytest.fixture(scope="module")
def fuzz_server(fuzz_pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("fuzz-server")
    server = start_server(
        fuzz_pki,
        f"sqlite:{folder / 'matcher.db'}",
        "--now",
        str(NOW),
        "--metrics-listen",
        "127.0.0.1:0",
        "--uploads-per-minute",
        "1000000",
        log=folder / "serve.log",
    )
    yield server
    server.stop()
