"""The fixtures that tests in several folders share, registered once for the whole suite (tests/conftest.py lists
this module in ``pytest_plugins``): a real redis-server for the session and a store on each backend.

Fixtures that only one folder uses stay in that folder's conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.redis_server import RedisServer

BACKENDS = ["sqlite", "redis"]
# The session's redis-server, on the test items that used it (tests/contract/conftest.py checks what they left).
USED_REDIS = pytest.StashKey[RedisServer]()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session, on a free port in a temporary folder, with ``appendfsync always`` (an
    acknowledged write is on disk, as SQLite's synchronous=FULL)."""
    with RedisServer(tmp_path_factory.mktemp("redis"), appendonly=True) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store on each backend: a new SQLite file, or the session's Redis emptied."""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'matcher.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    request.node.stash[USED_REDIS] = server
    client = server.client()
    client.flushall()
    client.close()
    return server.url
