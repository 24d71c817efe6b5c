"""Fixtures for the real service: a development PKI from `matcher certs`, and `matcher serve` on each store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Server, authorities_file, make_pki, start_server
from tests.support.redis_server import RedisServer

# 2026-11-20 12:00:00 UTC, interval 2991960: the fixed clock of the service tests.
NOW = 1795176000
TODAY = NOW // 600 - (NOW // 600) % 144


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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'matcher.db'}"
    redis: RedisServer = request.getfixturevalue("redis_server")
    redis.client().flushall()
    return redis.url


@pytest.fixture
def server(pki: Path, store_url: str, tmp_path: Path) -> Iterator[Server]:
    running = start_server(
        pki, store_url, "--now", str(NOW), "--metrics-listen", "127.0.0.1:0", log=tmp_path / "serve.log"
    )
    yield running
    running.stop()
