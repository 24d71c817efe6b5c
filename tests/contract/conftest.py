"""The store fixtures: every contract test runs against SQLite and against a real redis-server.

SQLite gets a fresh file per test. Redis gets one server per session (tests/support/fixtures.py: started in a
temp directory, on a free port), emptied before each test. After every Redis test, no key outside the documented
allow-list may be left without a TTL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from matcher.store import Store, open_store
from matcher.store.redis import KEYS_WITHOUT_TTL
from tests.support.fixtures import USED_REDIS


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def keys_without_ttl(client: redis.Redis) -> list[str]:
    """Every key that would live forever, except the allow-list (records that must outlive retention)."""
    return sorted(
        name.decode()
        for name in client.scan_iter(count=1000)
        if name.decode() not in KEYS_WITHOUT_TTL and client.ttl(name) == -1
    )


@pytest.fixture(autouse=True)
def every_redis_key_expires(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    server = request.node.stash.get(USED_REDIS, None)
    if server is None:
        return
    client = server.client()
    try:
        assert keys_without_ttl(client) == [], "Redis keys without a TTL"
    finally:
        client.close()
