"""What only the SQLite backend has to show: the file's set-up, its errors, and use after fork."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from matcher.store import StoreError, open_store
from matcher.store.sqlite import SCHEMA_VERSION, SqliteStore
from tests.contract.builders import RETENTION, TODAY, key, pending_key_data, submission, submit


def test_a_new_file_is_in_wal_mode_with_the_schema_version_recorded(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "store.db").close()

    db = sqlite3.connect(tmp_path / "store.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_file_from_a_newer_version_is_refused_and_left_alone(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "store.db").close()
    db = sqlite3.connect(tmp_path / "store.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()

    with pytest.raises(StoreError, match="schema version"):
        SqliteStore(tmp_path / "store.db")


def test_a_file_from_an_older_version_is_refused_saying_so_and_left_alone(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "store.db").close()
    db = sqlite3.connect(tmp_path / "store.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    db.close()

    with pytest.raises(StoreError) as refused:
        SqliteStore(tmp_path / "store.db")

    assert f"schema version {SCHEMA_VERSION - 1}, older than this program's {SCHEMA_VERSION}" in str(refused.value)
    assert "\n" not in str(refused.value)
    db = sqlite3.connect(tmp_path / "store.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION - 1


def test_a_file_that_cannot_be_opened_raises_store_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"missing/store.db"):
        open_store(f"sqlite:{tmp_path / 'missing' / 'store.db'}")


def test_a_file_that_is_not_a_database_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "store.db").write_bytes(b"not a database, just some text" * 100)

    with pytest.raises(StoreError):
        open_store(f"sqlite:{tmp_path / 'store.db'}")


def submit_in_child(store: SqliteStore) -> None:
    submit(store, submission("child", [key(2)]))


def test_a_forked_child_using_its_parents_store_object_opens_its_own_connection(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    submit(store, submission("parent", [key(1)]))

    child = multiprocessing.get_context("fork").Process(target=submit_in_child, args=(store,))
    child.start()
    child.join()

    assert child.exitcode == 0
    assert pending_key_data(store) == {key(1).key_data: 1, key(2).key_data: 1}


def test_a_purged_key_leaves_no_bytes_in_the_database_file_or_its_write_ahead_log(tmp_path: Path) -> None:
    # Retention is a promise about the disk, not only about queries: deleted rows' bytes stay in freed pages and in
    # the WAL's page images unless SQLite is told to overwrite them and the WAL is truncated.
    secret = b"\x8e\x13KEY-TO-PURGE\x99\x07"
    store = SqliteStore(tmp_path / "store.db")
    submit(store, submission("s1", [dataclasses.replace(key(1), key_data=secret), key(2, days_ago=0)]))
    files = [tmp_path / "store.db", tmp_path / "store.db-wal"]
    assert any(secret in path.read_bytes() for path in files if path.exists())

    ends = (TODAY - 144 + 144) * 600  # key 1 (yesterday's) ended at midnight; key 2 (today's) is still kept
    store.purge(now=ends + RETENTION, retention_seconds=RETENTION)

    assert [p.key.key_data for p in store.pending_keys(now=ends + RETENTION, limit=10)] == [key(2).key_data]
    assert not [path.name for path in files if path.exists() and secret in path.read_bytes()]
    store.close()
