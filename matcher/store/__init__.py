"""Storage: one protocol (base.Store), an embedded SQLite backend and a Redis backend, and ``open_store``, which
picks a backend by URL.

The contract (base.py) imports no backend; each backend imports the contract; only this package's entry point
knows both backends, and imports the one a URL names when it is asked for it (a SQLite user needs no redis).
"""

from pathlib import Path

from .base import (
    LEASE_SECONDS,
    BatchCommit,
    CodeRecord,
    LockLost,
    PendingKey,
    PurgeCounts,
    Store,
    StoredBatch,
    StoreError,
    SubmitResult,
)

__all__ = [
    "LEASE_SECONDS",
    "BatchCommit",
    "CodeRecord",
    "LockLost",
    "PendingKey",
    "PurgeCounts",
    "Store",
    "StoreError",
    "StoredBatch",
    "SubmitResult",
    "open_store",
]


def open_store(url: str, *, create: bool = True) -> Store:
    """A store from its URL: ``sqlite:PATH`` or ``redis://HOST:PORT/DB`` (``?cluster=true`` for Redis Cluster).

    With ``create=False`` a SQLite file that does not exist is refused rather than made: a command run in the
    wrong folder must not answer from a new, empty store (``matcher publish`` would say "nothing to publish")."""
    if url.startswith("sqlite:"):
        from .sqlite import SqliteStore

        path = url.removeprefix("sqlite:").removeprefix("//")
        if not path:
            raise ValueError("sqlite: needs a file path, e.g. sqlite:matcher.db")
        if Path(path).is_dir():
            raise StoreError(f"{url}: is a folder, not a database file")
        if not create and not Path(path).exists():
            raise StoreError(f"{url}: no such database (`matcher serve` creates it; --store names another)")
        return SqliteStore(path)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisStore

        return RedisStore(url)
    raise ValueError(f"unknown store {url!r}: use sqlite:PATH or redis://HOST:PORT/DB")
