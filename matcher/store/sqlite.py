"""The embedded store: one SQLite file in WAL mode, safe for several threads and processes on one machine.

Every write is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken up front, so two writers never
deadlock on a lock upgrade; ``busy_timeout`` makes the second one wait). Each thread gets its own connection.
Commits are durable (``synchronous=FULL``): a submission is acknowledged only after its keys reached the disk.

Retention works on the reference time of each record, compared with the ``now`` a call passes in:

- a key (pending or published) by the end of its validity, so that its fingerprint is remembered exactly as
  long as validation would still accept the key again;
- a batch by its publication time, a submission record by the time it was stored, a code by its own expiry.

docs/storage.md describes the tables.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import NotFound
from ..model import Submission
from .base import (
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
from .common import PendingItem, columns_of, invalid_code, item_of, new_case_id, submission_id_taken

# 2: pending keys carry their case and the time they were received (the anonymity hold counts cases).
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 30_000
# Each thread's connection keeps its own page cache, 2 MB by default: grpcio's 32 worker threads a process, each
# filling its cache a little more with every call it serves, made a server's memory climb for many minutes before
# it levelled off. 512 KiB a connection holds the tables' interior pages; the leaves come from the OS page cache.
CACHE_KIB = 512
# The WAL is cut back to this size after a checkpoint, so that it does not keep old page images (and their bytes).
JOURNAL_SIZE_LIMIT_BYTES = 4 << 20
MAX_CACHED_SPANS = 1024  # batch_span answers kept per connection (phones ask after a few sequences; any is possible)
MAX_INTEGER = 2**63 - 1  # SQLite's largest integer; requests carry uint64 sequence numbers

_SCHEMA = """
-- Every key ever stored, pending or published, by fingerprint: the de-duplication memory. No content.
CREATE TABLE fingerprints (
    fingerprint BLOB PRIMARY KEY,
    ends_at     INTEGER NOT NULL            -- unix seconds at which the key stopped being valid
) WITHOUT ROWID;
CREATE INDEX fingerprints_by_end ON fingerprints (ends_at);

-- Keys waiting for a batch. No authority, no client address: the region is kept with a key, and case_id, a
-- random id shared by the keys of one submission, so that the publisher can count a section's cases (it goes
-- with the row). Pending keys wait minutes for a batch, or up to the anonymity deadline (a day by default) in a
-- section of too few cases, so the table stays small: purge scans it rather than keep an index on ends_at that
-- every submission would have to update.
CREATE TABLE pending (
    id               INTEGER PRIMARY KEY,
    key_data         BLOB NOT NULL,
    rolling_start    INTEGER NOT NULL,
    rolling_period   INTEGER NOT NULL,
    report_type      INTEGER NOT NULL,
    days_since_onset INTEGER,
    contact_intervals BLOB,                      -- NULL: every interval (docs/spec.md, "What is published")
    region           TEXT NOT NULL,
    publish_after    INTEGER NOT NULL,
    ends_at          INTEGER NOT NULL,
    case_id          TEXT NOT NULL,
    received_at      INTEGER NOT NULL            -- the now of the submission that stored it
);
CREATE INDEX pending_by_publish_after ON pending (publish_after, id);

-- The body is the last column so that reading the others never walks its overflow pages.
CREATE TABLE batches (
    sequence      INTEGER PRIMARY KEY,
    published_at  INTEGER NOT NULL,
    signed_header BLOB NOT NULL,
    body_size     INTEGER NOT NULL,
    body          BLOB NOT NULL
);
CREATE INDEX batches_by_published_at ON batches (published_at);

CREATE TABLE submissions (
    authority     TEXT NOT NULL,
    submission_id TEXT NOT NULL,
    digest        BLOB NOT NULL,
    response      BLOB NOT NULL,
    stored_at     INTEGER NOT NULL,
    PRIMARY KEY (authority, submission_id)
) WITHOUT ROWID;
CREATE INDEX submissions_by_stored_at ON submissions (stored_at);

CREATE TABLE codes (
    code_hash     BLOB PRIMARY KEY,
    authority     TEXT NOT NULL,
    region        TEXT NOT NULL,
    report_type   INTEGER NOT NULL,
    symptom_onset TEXT NOT NULL,
    expires_at    INTEGER NOT NULL,
    exposure_date TEXT NOT NULL              -- RECURSIVE codes: the contact's day of exposure, else ''
) WITHOUT ROWID;
CREATE INDEX codes_by_expiry ON codes (expires_at);

-- Counters that never go back: 'sequence' (last committed batch) and 'fence' (last fencing token).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE publish_lock (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    owner         TEXT NOT NULL,
    fence         INTEGER NOT NULL,
    expires_at    REAL NOT NULL,             -- wall clock (time.time()), not the data clock
    lease_seconds REAL NOT NULL
);

CREATE TABLE exposure_config (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    signed BLOB NOT NULL
);
"""

# Primary result codes after which a connection is dropped: it was opened while the file was read-only (SQLite
# then opens it read-only for good) or it lost its file. Every thread reopens on its next call, so the store
# recovers as soon as the file is writable again, without a restart.
_REOPEN_AFTER = frozenset({sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR})

_PENDING_COLUMNS = (
    "key_data, rolling_start, rolling_period, report_type, days_since_onset, contact_intervals, region, publish_after,"
    " ends_at,"
    " case_id, received_at"
)
_PENDING_PLACEHOLDERS = ", ".join("?" for _ in _PENDING_COLUMNS.split(","))


def lease_is_live(expires_at: float, lease_seconds: float, clock: float) -> bool:
    """Whether a lease taken on the wall clock still holds at ``clock``.

    A lease that seems to have more than its whole length left means the clock was set back: it counts as
    expired. Safety never depends on this clock (a stale holder cannot commit, its fence is checked); the clock
    only decides when a dead publisher's lock can be taken over.
    """
    remaining = expires_at - clock
    return 0 < remaining <= lease_seconds


class SqliteStore:
    """The Store protocol (matcher/store/base.py) on one SQLite file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        # Writers of this process queue here instead of in SQLite's busy handler, which polls with sleeps of up
        # to 100 ms: under 16 concurrent submitters that polling made p99 latency seconds long. Other processes
        # (a `matcher publish`, a backup) still wait through busy_timeout.
        self._write_lock = threading.Lock()
        self._pid = os.getpid()
        self._generation = 0  # bumped to make every thread reopen its connection (see _REOPEN_AFTER)
        with self._errors():
            self._create_schema()

    # --- connections and transactions ----------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            # A forked child must not touch its parent's connections (SQLite forbids it); it opens its own.
            self._local = threading.local()
            self._connections = []
            self._connections_lock = threading.Lock()
            self._write_lock = threading.Lock()
            self._pid = os.getpid()
        db = getattr(self._local, "db", None)
        if db is not None and self._local.generation != self._generation:
            self._forget(db)
            db = None
        if db is None:
            generation = self._generation
            db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            with self._connections_lock:
                self._connections.append(db)
            self._local.db, self._local.generation = db, generation
            self._local.spans, self._local.spans_version = {}, None  # batch_span's answers were the old connection's
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA synchronous = FULL")
            db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            # Deleted rows are overwritten with zeros, not left in free pages: retention is a promise about the disk.
            db.execute("PRAGMA secure_delete = ON")
            db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
        return db

    def _forget(self, db: sqlite3.Connection) -> None:
        """Closes this thread's connection (never another thread's: it may be in use)."""
        with self._connections_lock:
            if db in self._connections:
                self._connections.remove(db)
        db.close()
        self._local.db = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            if getattr(error, "sqlite_errorcode", 0) & 0xFF in _REOPEN_AFTER:
                self._generation += 1
            raise StoreError(f"sqlite store {self.path}: {_explained(error)}") from error

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; any exception rolls it back and leaves the store as it was."""
        with self._errors():
            db = self._connection()
            if not self._write_lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
                raise StoreError(f"sqlite store {self.path}: busy: other writers held it for {BUSY_TIMEOUT_MS} ms")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                finally:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
            finally:
                self._write_lock.release()

    def _create_schema(self) -> None:
        db = self._connection()
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                # executescript() would commit first; statements are split on ";", so the schema's comments have none.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version < SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has store schema version {version}, older than this program's {SCHEMA_VERSION} "
                    "(its pending keys carry no case for the anonymity hold); this program does not convert it"
                )
            elif version != SCHEMA_VERSION:
                raise StoreError(f"{self.path} has store schema version {version}; this program knows {SCHEMA_VERSION}")
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")

    def ping(self) -> None:
        """Raises StoreError unless the store can be read and written. The write probe changes nothing (and
        leaves nothing in the WAL), but SQLite refuses it on a read-only file like any write."""
        with self._errors():
            db = self._connection()
            db.execute("SELECT 1 FROM counters LIMIT 1").fetchall()
            db.execute("UPDATE counters SET value = value WHERE 0")

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()
        self._local = threading.local()

    # --- submissions ---------------------------------------------------------------------------------------

    def submit(
        self,
        submission: Submission,
        *,
        response: bytes,
        now: int,
        retention_seconds: int,
        code_hash: bytes | None = None,
    ) -> SubmitResult:
        # Exactly-once step 0, de-duplicate (matcher/publisher.py): the submission record, the code, the
        # fingerprints and the pending keys change in one BEGIN IMMEDIATE transaction.
        with self._write() as db:
            earlier = db.execute(
                "SELECT digest, response FROM submissions WHERE authority = ? AND submission_id = ? AND stored_at > ?",
                (submission.authority, submission.submission_id, now - retention_seconds),
            ).fetchone()
            if earlier is not None:
                if earlier[0] == submission.digest:
                    return SubmitResult(replayed=earlier[1])
                raise submission_id_taken()
            if code_hash is not None:
                consumed = db.execute(
                    "DELETE FROM codes WHERE code_hash = ? AND expires_at > ?", (code_hash, now)
                ).rowcount
                if consumed != 1:
                    raise invalid_code()

            items: tuple[PendingItem, ...] = (*submission.keys, *submission.venue_hours)
            new_keys = _new_keys(db, items)
            case = new_case_id()
            rows = [
                (*columns_of(key), submission.region, key.publish_after(), key.ends_at, case, now)
                for _, key in new_keys
            ]
            db.executemany(
                "INSERT INTO fingerprints (fingerprint, ends_at) VALUES (?, ?)",
                [(fingerprint, key.ends_at) for fingerprint, key in new_keys],
            )
            db.executemany(f"INSERT INTO pending ({_PENDING_COLUMNS}) VALUES ({_PENDING_PLACEHOLDERS})", rows)
            db.execute(
                "INSERT OR REPLACE INTO submissions (authority, submission_id, digest, response, stored_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (submission.authority, submission.submission_id, submission.digest, response, now),
            )
            return SubmitResult(replayed=None, stored=len(rows), duplicates=len(items) - len(rows))

    # --- one-time codes ------------------------------------------------------------------------------------

    def put_code(self, code_hash: bytes, record: CodeRecord, *, now: int) -> bool:
        with self._write() as db:
            # A hash whose earlier code has expired is free again; the very same record put again is no conflict.
            written = db.execute(
                "INSERT INTO codes (code_hash, authority, region, report_type, symptom_onset, expires_at,"
                " exposure_date) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (code_hash) DO UPDATE SET authority = excluded.authority, region = excluded.region,"
                " report_type = excluded.report_type, symptom_onset = excluded.symptom_onset,"
                " expires_at = excluded.expires_at, exposure_date = excluded.exposure_date"
                " WHERE codes.expires_at <= ?"
                " OR (codes.authority, codes.region, codes.report_type, codes.symptom_onset, codes.expires_at,"
                " codes.exposure_date) = (excluded.authority, excluded.region, excluded.report_type,"
                " excluded.symptom_onset, excluded.expires_at, excluded.exposure_date)",
                (
                    code_hash,
                    record.authority,
                    record.region,
                    record.report_type,
                    record.symptom_onset,
                    record.expires_at,
                    record.exposure_date,
                    now,
                ),
            ).rowcount
            return written == 1

    def get_code(self, code_hash: bytes, *, now: int) -> CodeRecord | None:
        with self._errors():
            row = (
                self._connection()
                .execute(
                    "SELECT authority, region, report_type, symptom_onset, expires_at, exposure_date FROM codes"
                    " WHERE code_hash = ? AND expires_at > ?",
                    (code_hash, now),
                )
                .fetchone()
            )
        return None if row is None else CodeRecord(*row)

    def replay_of(
        self, authority: str, submission_id: str, digest: bytes, *, now: int, retention_seconds: int
    ) -> bytes | None:
        with self._errors():
            earlier = (
                self._connection()
                .execute(
                    "SELECT digest, response FROM submissions WHERE authority = ? AND submission_id = ? AND stored_at > ?",
                    (authority, submission_id, now - retention_seconds),
                )
                .fetchone()
            )
        if earlier is None:
            return None
        if earlier[0] != digest:
            raise submission_id_taken()
        response: bytes = earlier[1]
        return response

    # --- publishing ----------------------------------------------------------------------------------------

    def acquire_publish_lock(self, owner: str, lease_seconds: float) -> int | None:
        # Exactly-once steps 1 and 2, lock and fence (matcher/publisher.py): the lock row, and the fence counter
        # that never goes back, in one transaction.
        with self._write() as db:
            clock = time.time()  # read after BEGIN IMMEDIATE: waiting for the write lock must not age the lease
            holder = db.execute("SELECT owner, expires_at, lease_seconds FROM publish_lock").fetchone()
            if holder is not None and holder[0] != owner and lease_is_live(holder[1], holder[2], clock):
                return None
            fence = db.execute(
                "INSERT INTO counters (name, value) VALUES ('fence', 1)"
                " ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value"
            ).fetchone()[0]
            db.execute(
                "INSERT OR REPLACE INTO publish_lock (id, owner, fence, expires_at, lease_seconds)"
                " VALUES (1, ?, ?, ?, ?)",
                (owner, fence, clock + lease_seconds, lease_seconds),
            )
            return int(fence)

    def release_publish_lock(self, owner: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM publish_lock WHERE owner = ?", (owner,))

    def pending_keys(self, *, now: int, limit: int) -> list[PendingKey]:
        with self._errors():
            rows = (
                self._connection()
                .execute(
                    "SELECT id, key_data, rolling_start, rolling_period, report_type, days_since_onset, contact_intervals,"
                    " region, case_id, received_at FROM pending WHERE publish_after <= ? ORDER BY publish_after, id LIMIT ?",
                    (now, limit),
                )
                .fetchall()
            )
        return [
            PendingKey(str(id_), item_of(key_data, start, period, report_type, days, contacts), region, case, received)
            for id_, key_data, start, period, report_type, days, contacts, region, case, received in rows
        ]

    def last_sequence(self) -> int:
        with self._errors():
            return _counter(self._connection(), "sequence")

    def commit_batch(self, batch: BatchCommit) -> None:
        # Exactly-once step 4, commit (matcher/publisher.py): the fence, lease and sequence are checked inside the
        # transaction that writes the batch, so nothing can come between the check and the write.
        with self._write() as db:
            holder = db.execute("SELECT owner, fence, expires_at, lease_seconds FROM publish_lock").fetchone()
            if holder is None or (holder[0], holder[1]) != (batch.owner, batch.fence):
                raise LockLost(f"publisher {batch.owner!r} no longer holds the lock with fence {batch.fence}")
            if not lease_is_live(holder[2], holder[3], time.time()):
                raise LockLost(f"the lease of publisher {batch.owner!r} (fence {batch.fence}) has expired")
            last = _counter(db, "sequence")
            if batch.sequence != last + 1:
                raise LockLost(f"batch {batch.sequence} cannot follow batch {last}")
            db.execute(
                "INSERT INTO batches (sequence, published_at, signed_header, body_size, body) VALUES (?, ?, ?, ?, ?)",
                (batch.sequence, batch.published_at, batch.signed_header, len(batch.body), batch.body),
            )
            self._remove_pending(db, batch.key_ids)
            db.execute(
                "INSERT INTO counters (name, value) VALUES ('sequence', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (batch.sequence,),
            )

    def _remove_pending(self, db: sqlite3.Connection, key_ids: Sequence[str]) -> None:
        # The fingerprints stay: they keep a published key from being stored (and published) again.
        db.executemany("DELETE FROM pending WHERE id = ?", [(int(key_id),) for key_id in key_ids])

    def list_batches(self, *, after: int, limit: int) -> list[StoredBatch]:
        if after >= MAX_INTEGER:
            return []  # sequences are SQLite integers: nothing follows the largest (and a bigger one cannot bind)
        with self._errors():
            rows = (
                self._connection()
                .execute(
                    "SELECT sequence, published_at, signed_header, body_size FROM batches"
                    " WHERE sequence > ? ORDER BY sequence LIMIT ?",
                    (after, limit),
                )
                .fetchall()
            )
        return [StoredBatch(*row) for row in rows]

    def batch_span(self, *, after: int) -> tuple[int, int, int]:
        if after >= MAX_INTEGER:
            return 0, 0, 0
        with self._errors():
            db = self._connection()
            # Every ListBatches asks, so the answer is kept per connection until the file changes. data_version
            # changes when another connection commits, total_changes when this one writes: together they say
            # exactly whether a batch may have come or gone, for a few microseconds instead of the query's ~40.
            version = (db.execute("PRAGMA data_version").fetchone()[0], db.total_changes)
            spans: dict[int, tuple[int, int, int]] = self._local.spans  # set with the connection
            if self._local.spans_version != version or len(spans) >= MAX_CACHED_SPANS:
                spans = self._local.spans = {}
                self._local.spans_version = version
            span = spans.get(after)
            if span is None:
                # One statement (one snapshot) over the rowid b-tree that decodes no row.
                count, first, last = db.execute(
                    "SELECT count(*), min(sequence), max(sequence) FROM batches WHERE sequence > ?", (after,)
                ).fetchone()
                span = spans[after] = (count, first, last) if count else (0, 0, 0)
        return span

    def read_body(self, sequence: int, offset: int, length: int) -> bytes:
        if not 0 < sequence <= MAX_INTEGER:
            raise NotFound(f"batch {sequence} does not exist or has expired")
        with self._errors():
            db = self._connection()
            try:
                # Incremental blob I/O reads only the pages of the range, not the whole body.
                with db.blobopen("batches", "body", sequence, readonly=True) as blob:
                    if offset >= len(blob) or length <= 0:
                        return b""
                    blob.seek(max(offset, 0))
                    return blob.read(length)
            except sqlite3.OperationalError as error:
                if "no such rowid" not in str(error):
                    raise
        raise NotFound(f"batch {sequence} does not exist or has expired")

    # --- exposure configuration ----------------------------------------------------------------------------

    def put_exposure_config(self, signed_config: bytes, *, replacing: bytes | None) -> bool:
        with self._write() as db:
            row = db.execute("SELECT signed FROM exposure_config").fetchone()
            if (None if row is None else bytes(row[0])) != replacing:
                return False
            db.execute("INSERT OR REPLACE INTO exposure_config (id, signed) VALUES (1, ?)", (signed_config,))
            return True

    def get_exposure_config(self) -> bytes | None:
        with self._errors():
            row = self._connection().execute("SELECT signed FROM exposure_config").fetchone()
        return None if row is None else bytes(row[0])

    # --- retention -----------------------------------------------------------------------------------------

    def purge(self, *, now: int, retention_seconds: int) -> PurgeCounts:
        # Exactly-once step 5, purge (matcher/publisher.py).
        cutoff = now - retention_seconds
        with self._write() as db:
            db.execute("DELETE FROM pending WHERE ends_at <= ?", (cutoff,))
            counts = PurgeCounts(
                keys=db.execute("DELETE FROM fingerprints WHERE ends_at <= ?", (cutoff,)).rowcount,
                batches=db.execute("DELETE FROM batches WHERE published_at <= ?", (cutoff,)).rowcount,
                codes=db.execute("DELETE FROM codes WHERE expires_at <= ?", (now,)).rowcount,
                submissions=db.execute("DELETE FROM submissions WHERE stored_at <= ?", (cutoff,)).rowcount,
            )
        # The WAL still holds the pages as they were before the deletes: copy the zeroed pages into the file and
        # truncate the log. A reader in the middle of a snapshot can hold it back; the next purge tries again.
        with self._errors():
            self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return counts


def _explained(error: sqlite3.Error) -> str:
    """SQLite's message, with what an operator can do about the two that a file's permissions cause."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_READONLY:
        return f"{error} (the database file is read-only; writes fail until it is writable again)"
    if code == sqlite3.SQLITE_CANTOPEN:
        return f"{error} (SQLite needs to read and write the file and create its -wal and -shm files next to it)"
    return str(error)


def _counter(db: sqlite3.Connection, name: str) -> int:
    row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return 0 if row is None else int(row[0])


def _new_keys(db: sqlite3.Connection, keys: Sequence[PendingItem]) -> list[tuple[bytes, PendingItem]]:
    """The keys (or venue hours) whose fingerprint the store does not hold yet (one repeated counts once)."""
    by_fingerprint: dict[bytes, PendingItem] = {}
    for key in keys:
        by_fingerprint.setdefault(key.fingerprint(), key)
    held = {
        row[0]
        for row in db.execute(
            f"SELECT fingerprint FROM fingerprints WHERE fingerprint IN ({','.join('?' * len(by_fingerprint))})",
            list(by_fingerprint),
        )
    }
    return [(fp, key) for fp, key in by_fingerprint.items() if fp not in held]


# Checked by mypy: the backend satisfies the Store protocol (a method missing or with another signature fails the
# static check, not a contract test at run time).
_satisfies_store: type[Store] = SqliteStore
