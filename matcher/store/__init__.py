"""Storage: one protocol (base.Store), an embedded SQLite backend and a Redis backend."""

from .base import (
    CodeRecord,
    LockLost,
    PendingKey,
    PurgeCounts,
    Store,
    StoredBatch,
    StoreError,
    SubmitResult,
    open_store,
)

__all__ = [
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
