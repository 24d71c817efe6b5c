"""Fixtures of the fault tests: a PKI whose authority is not rate-limited, and a store on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pki import pki_with
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def fault_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pki_with(tmp_path_factory.mktemp("fault-pki") / "tls", "ha-north")


@pytest.fixture(scope="session")
def fault_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("fault-redis"), appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'matcher.db'}"
    redis: RedisServer = request.getfixturevalue("fault_redis")
    redis.client().flushall()
    return redis.url
