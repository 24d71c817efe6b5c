"""The phone's own database (SQLite): its daily keys, what its scanner heard, and the batches it verified.

Everything here stays on the phone. Rows older than the retention window (14 days) are deleted by
:meth:`PhoneStore.expire`, which every command runs first. Observations are kept as a BLE scanner records them:
one row per sighting, many sightings per RPI.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from matcher.intervals import INTERVAL_SECONDS, INTERVALS_PER_DAY, SECONDS_PER_DAY
from matcher.model import DEFAULT_RETENTION_DAYS

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS own_keys (
    rolling_start INTEGER PRIMARY KEY,      -- the UTC day's first interval
    tek BLOB NOT NULL,
    rolling_period INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sightings (
    id INTEGER PRIMARY KEY,
    rpi BLOB NOT NULL,
    interval INTEGER NOT NULL,              -- floor(time / 600) by the phone's clock
    time INTEGER NOT NULL,                  -- unix seconds of the scan
    rssi INTEGER NOT NULL,
    aem BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS sightings_by_time ON sightings (time);
CREATE TABLE IF NOT EXISTS batches (
    sequence INTEGER PRIMARY KEY,
    signed_header BLOB NOT NULL,            -- the exact bytes that verified
    published_at INTEGER NOT NULL,
    body BLOB NOT NULL,                     -- verified filter bytes
    checked_through INTEGER NOT NULL DEFAULT 0   -- sightings with id <= this were matched against it
);
CREATE TABLE IF NOT EXISTS downloads (      -- a batch whose download was cut: resumed from len(body)
    sequence INTEGER PRIMARY KEY,
    signed_header BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS matches (
    sighting_id INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    section INTEGER NOT NULL,               -- index in the batch header's sections
    matched_interval INTEGER NOT NULL,      -- the interval whose element matched (the alarm rule's coherence)
    PRIMARY KEY (sighting_id, sequence)
);
CREATE TABLE IF NOT EXISTS state (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkins (       -- venue visits, from a scanned QR code (docs/spec.md, "Venues")
    id INTEGER PRIMARY KEY,
    venue_id BLOB NOT NULL,
    name TEXT NOT NULL,                     -- for the person's own screen
    entry INTEGER NOT NULL,                 -- unix seconds
    exit INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class KeptBatch:
    """A verified batch as the phone keeps it."""

    sequence: int
    signed_header: bytes  # the exact bytes that verified
    published_at: int
    body: bytes
    checked_through: int  # sightings with an id up to this were matched against it


@dataclass(frozen=True)
class CheckIn:
    """A venue visit: the venue's id (from its QR code), its name, and the times of entry and exit."""

    id: int
    venue_id: bytes
    name: str
    entry: int
    exit: int


@dataclass(frozen=True)
class Sightings:
    """Sightings as whole arrays, for vectorised matching."""

    ids: NDArray[np.int64]
    rpis: NDArray[np.uint8]  # (n, 16)
    intervals: NDArray[np.int64]
    times: NDArray[np.int64]
    rssi: NDArray[np.int16]
    aems: NDArray[np.uint8]  # (n, 4)

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, mask: NDArray[np.bool_]) -> Sightings:
        return Sightings(
            self.ids[mask], self.rpis[mask], self.intervals[mask], self.times[mask], self.rssi[mask], self.aems[mask]
        )


class PhoneStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA busy_timeout=10000")
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:  # not a database, unreadable, a folder: one line naming the file
            raise ValueError(f"{path}: not a phone database that can be opened ({exc})") from None
        if version not in (0, 1, SCHEMA_VERSION):
            raise ValueError(f"{path}: phone database schema {version} is not supported (expected {SCHEMA_VERSION})")
        if version == 1:
            # Schema 1 kept batches of publication format 1 (Bloom filters), which this phone cannot read: forget
            # them and their matches, and download the retained batches again. Keys and sightings stay.
            self.db.executescript(
                "DROP TABLE batches; DROP TABLE downloads; DROP TABLE matches;"
                " DELETE FROM state WHERE name IN ('cursor', 'matched_config');"
            )
        self.db.executescript(SCHEMA)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> PhoneStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- state ------------------------------------------------------------------------------------------------

    def get(self, name: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def put(self, name: str, value: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO state (name, value) VALUES (?, ?)", (name, value))

    def get_int(self, name: str, default: int = 0) -> int:
        value = self.get(name)
        return int(value) if value is not None else default

    def add_int(self, name: str, amount: int) -> None:
        self.put(name, str(self.get_int(name) + amount).encode())

    # --- own keys -----------------------------------------------------------------------------------------------

    def own_key(self, rolling_start: int) -> bytes | None:
        row = self.db.execute("SELECT tek FROM own_keys WHERE rolling_start = ?", (rolling_start,)).fetchone()
        return row[0] if row else None

    def add_own_key(self, rolling_start: int, tek: bytes, rolling_period: int = INTERVALS_PER_DAY) -> bytes:
        """Stores a day's key unless the day has one already; returns the day's key."""
        self.db.execute(
            "INSERT OR IGNORE INTO own_keys (rolling_start, tek, rolling_period) VALUES (?, ?, ?)",
            (rolling_start, tek, rolling_period),
        )
        held = self.own_key(rolling_start)
        assert held is not None, "the day's key was just stored, or was already"
        return held

    def own_keys(self) -> list[tuple[int, bytes, int]]:
        return self.db.execute(
            "SELECT rolling_start, tek, rolling_period FROM own_keys ORDER BY rolling_start"
        ).fetchall()

    # --- sightings ----------------------------------------------------------------------------------------------

    def add_sightings(self, rows: Iterable[tuple[bytes, int, int, int, bytes]]) -> int:
        """Stores sightings as (rpi, interval, time, rssi, aem); returns how many."""
        with self.db:
            self.db.execute("BEGIN")
            cursor = self.db.executemany(
                "INSERT INTO sightings (rpi, interval, time, rssi, aem) VALUES (?, ?, ?, ?, ?)", rows
            )
        return cursor.rowcount

    def sightings(self, after_id: int = 0, during: tuple[int, int] | None = None) -> Sightings:
        """Sightings with an id above ``after_id``; with ``during`` = (start, end) in unix seconds, only those
        recorded in ``[start, end)``."""
        start, end = during if during is not None else (-(2**62), 2**62)
        rows = self.db.execute(
            "SELECT id, rpi, interval, time, rssi, aem FROM sightings WHERE id > ? AND time >= ? AND time < ? "
            "ORDER BY id",
            (after_id, start, end),
        ).fetchall()
        return _as_arrays(rows)

    def sightings_by_id(self, ids: Iterable[int]) -> Sightings:
        wanted = sorted(set(ids))
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            rows += self.db.execute(
                f"SELECT id, rpi, interval, time, rssi, aem FROM sightings WHERE id IN ({','.join('?' * len(part))})",
                part,
            ).fetchall()
        rows.sort()
        return _as_arrays(rows)

    def heard_intervals(self, first: int, end: int) -> set[int]:
        """The intervals in ``[first, end)`` in which the scanner recorded anything."""
        rows = self.db.execute(
            "SELECT DISTINCT interval FROM sightings WHERE interval >= ? AND interval < ?", (first, end)
        ).fetchall()
        return {row[0] for row in rows}

    def scan_times(self) -> NDArray[np.int64]:
        """Every distinct time the scanner recorded something, ascending: the phone's scan schedule."""
        rows = self.db.execute("SELECT DISTINCT time FROM sightings ORDER BY time").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def last_sighting_id(self) -> int:
        last: int = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM sightings").fetchone()[0]
        return last

    # --- batches ------------------------------------------------------------------------------------------------

    def cursor(self) -> int:
        """The newest batch sequence this phone has dealt with (verified and kept, or refused)."""
        return self.get_int("cursor")

    def set_cursor(self, sequence: int) -> None:
        self.put("cursor", str(sequence).encode())

    def partial_download(self, sequence: int) -> tuple[bytes, bytes] | None:
        row = self.db.execute("SELECT signed_header, body FROM downloads WHERE sequence = ?", (sequence,)).fetchone()
        return (row[0], row[1]) if row else None

    def save_partial(self, sequence: int, signed_header: bytes, body: bytes) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO downloads (sequence, signed_header, body) VALUES (?, ?, ?)",
            (sequence, signed_header, body),
        )

    def keep_batch(self, sequence: int, signed_header: bytes, published_at: int, body: bytes) -> None:
        """Stores a verified batch and moves the cursor past it, in one transaction."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT OR REPLACE INTO batches (sequence, signed_header, published_at, body) VALUES (?, ?, ?, ?)",
                (sequence, signed_header, published_at, body),
            )
            self.db.execute("DELETE FROM downloads WHERE sequence = ?", (sequence,))
            self.db.execute(
                "INSERT OR REPLACE INTO state (name, value) VALUES ('cursor', ?)", (str(sequence).encode(),)
            )

    def refuse_batch(self, sequence: int) -> None:
        """Moves the cursor past a batch that failed verification, so it is never used (nor fetched again)."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM downloads WHERE sequence = ?", (sequence,))
            self.db.execute(
                "INSERT OR REPLACE INTO state (name, value) VALUES ('cursor', ?)", (str(sequence).encode(),)
            )

    def batches(self) -> list[KeptBatch]:
        """Every kept batch, oldest first."""
        rows = self.db.execute(
            "SELECT sequence, signed_header, published_at, body, checked_through FROM batches ORDER BY sequence"
        ).fetchall()
        return [KeptBatch(*row) for row in rows]

    def record_matches(self, sequence: int, matches: Iterable[tuple[int, int, int]], checked_through: int) -> None:
        """Stores (sighting_id, section, matched_interval) matches of a batch and how far its check got, atomically."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO matches (sighting_id, sequence, section, matched_interval) VALUES (?, ?, ?, ?)",
                [(sighting, sequence, section, interval) for sighting, section, interval in matches],
            )
            self.db.execute("UPDATE batches SET checked_through = ? WHERE sequence = ?", (checked_through, sequence))

    def matches(self) -> list[tuple[int, int, int, int]]:
        """(sighting_id, sequence, section, matched_interval) of every match, by sighting."""
        return self.db.execute(
            "SELECT sighting_id, sequence, section, matched_interval FROM matches ORDER BY sighting_id, sequence"
        ).fetchall()

    def restart_matching(self) -> None:
        """Forgets every match and every batch's progress, so that the next check tests everything again."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM matches")
            self.db.execute("UPDATE batches SET checked_through = 0")

    # --- retention ----------------------------------------------------------------------------------------------

    def add_checkin(self, venue_id: bytes, name: str, entry: int, exit: int) -> int:
        """Records a venue visit; returns its id."""
        row_id = self.db.execute(
            "INSERT INTO checkins (venue_id, name, entry, exit) VALUES (?, ?, ?, ?)", (venue_id, name, entry, exit)
        ).lastrowid
        assert row_id is not None, "an INSERT has a row id"
        return row_id

    def checkins(self) -> list[CheckIn]:
        """Every visit still held, oldest first."""
        rows = self.db.execute("SELECT id, venue_id, name, entry, exit FROM checkins ORDER BY entry, id").fetchall()
        return [CheckIn(*row) for row in rows]

    def expire(self, now: int, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        """Deletes keys, sightings, check-ins, batches and matches older than the retention window."""
        cutoff = now - retention_days * SECONDS_PER_DAY
        cutoff_interval = cutoff // INTERVAL_SECONDS
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM own_keys WHERE rolling_start + rolling_period <= ?", (cutoff_interval,))
            self.db.execute("DELETE FROM sightings WHERE time < ?", (cutoff,))
            self.db.execute("DELETE FROM checkins WHERE exit < ?", (cutoff,))
            self.db.execute("DELETE FROM batches WHERE published_at < ?", (cutoff,))
            self.db.execute(
                "DELETE FROM matches WHERE sighting_id NOT IN (SELECT id FROM sightings) "
                "OR sequence NOT IN (SELECT sequence FROM batches)"
            )


def _as_arrays(rows: Sequence[tuple[Any, ...]]) -> Sightings:
    n = len(rows)
    ids, rpis, intervals, times, rssi, aems = zip(*rows) if n else ((),) * 6  # columns, transposed in C
    return Sightings(
        ids=np.array(ids, dtype=np.int64),
        rpis=np.frombuffer(b"".join(rpis), dtype=np.uint8).reshape(n, 16),
        intervals=np.array(intervals, dtype=np.int64),
        times=np.array(times, dtype=np.int64),
        rssi=np.array(rssi, dtype=np.int16),
        aems=np.frombuffer(b"".join(aems), dtype=np.uint8).reshape(n, 4),
    )
