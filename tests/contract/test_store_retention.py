"""Retention: purge removes exactly the records past the window at ``now``, on either side of each boundary, and
by the data clock (a historical ``now`` works as well as today's)."""

from __future__ import annotations

import pytest

from matcher.errors import AlreadyExists, NotFound
from matcher.model import DiagnosisKey, ReportType
from matcher.store import BatchCommit, CodeRecord, PurgeCounts, Store, SubmitResult
from tests.contract.builders import AUTHORITY, LEASE, NOW, RETENTION, TODAY, key, pending_key_data, submission, submit

PURGE_AT = NOW
CUTOFF = PURGE_AT - RETENTION


def key_ending_at_interval(n: int, end_interval: int) -> DiagnosisKey:
    start = TODAY - 14 * 144
    return DiagnosisKey(n.to_bytes(16, "big"), start, end_interval - start, ReportType.CONFIRMED_TEST)


CUTOFF_INTERVAL = CUTOFF // 600
EXPIRED_KEYS = [key(1, days_ago=20), key(2, days_ago=16), key_ending_at_interval(3, CUTOFF_INTERVAL)]
KEPT_KEYS = [key_ending_at_interval(4, CUTOFF_INTERVAL + 1), key(5, days_ago=2), key(6, days_ago=1)]
PUBLISHED = {key(2, days_ago=16).key_data, key(5, days_ago=2).key_data}


def code(n: int) -> bytes:
    return bytes([n]) * 32


def commit_at(store: Store, published_at: int, key_ids: list[str]) -> None:
    fence = store.acquire_publish_lock("publisher", LEASE)
    sequence = store.last_sequence() + 1
    store.commit_batch(
        BatchCommit(
            owner="publisher",
            fence=fence,
            sequence=sequence,
            published_at=published_at,
            signed_header=b"header",
            body=b"body %d" % sequence,
            key_ids=key_ids,
            now=published_at,
            retention_seconds=RETENTION,
        )
    )
    store.release_publish_lock("publisher")


def build_data_of_every_age(store: Store) -> None:
    submit(store, submission("keys", EXPIRED_KEYS + KEPT_KEYS), now=PURGE_AT - 60)
    ids = {p.key.key_data: p.id for p in store.pending_keys(now=PURGE_AT, limit=100)}
    # Batches 1 and 2 are past retention (2 exactly at the boundary), 3 and 4 are not.
    commit_at(store, CUTOFF - 1, [ids[key(2).key_data]])
    commit_at(store, CUTOFF, [])
    commit_at(store, CUTOFF + 1, [ids[key(5).key_data]])
    commit_at(store, PURGE_AT, [])
    for n, stored_at in enumerate([CUTOFF - 3600, CUTOFF, CUTOFF + 1, PURGE_AT - 60]):
        submit(store, submission(f"aged-{n}", []), now=stored_at)
    for n, expires_at in enumerate([PURGE_AT - 1, PURGE_AT, PURGE_AT + 1], start=1):
        store.put_code(code(n), CodeRecord(AUTHORITY, "VN", 1, "", expires_at), now=PURGE_AT - 3600)


def test_purge_removes_exactly_the_records_past_retention(store: Store) -> None:
    build_data_of_every_age(store)

    counts = store.purge(now=PURGE_AT, retention_seconds=RETENTION)

    assert counts == PurgeCounts(keys=3, batches=2, codes=2, submissions=2)
    assert pending_key_data(store, now=PURGE_AT) == {k.key_data: 1 for k in KEPT_KEYS if k.key_data not in PUBLISHED}
    assert [b.sequence for b in store.list_batches(after=0, limit=10)] == [3, 4]
    assert store.batch_span(after=0) == (2, 3, 4)
    for gone in (1, 2):
        with pytest.raises(NotFound):
            store.read_body(gone, 0, 10)
    assert store.read_body(3, 0, 10) == b"body 3"
    # Asked at a time when they would still be valid, the purged codes are gone and the kept one is not.
    assert [store.get_code(code(n), now=PURGE_AT - 3600) is not None for n in (1, 2, 3)] == [False, False, True]


def test_purge_forgets_exactly_the_expired_submission_records(store: Store) -> None:
    build_data_of_every_age(store)
    store.purge(now=PURGE_AT, retention_seconds=RETENTION)

    # Replaying each id with other content at its own storing time tells whether its record still exists.
    outcomes = []
    for n, stored_at in enumerate([CUTOFF - 3600, CUTOFF, CUTOFF + 1, PURGE_AT - 60]):
        try:
            submit(store, submission(f"aged-{n}", [key(100 + n)]), now=stored_at)
            outcomes.append("forgotten")
        except AlreadyExists:
            outcomes.append("kept")

    assert outcomes == ["forgotten", "forgotten", "kept", "kept"]


def test_purge_forgets_the_fingerprints_of_expired_keys_pending_or_published(store: Store) -> None:
    build_data_of_every_age(store)
    store.purge(now=PURGE_AT, retention_seconds=RETENTION)

    # Pushed again at a time before they expired, only the purged keys are new to the store.
    again = submit(store, submission("again", EXPIRED_KEYS + KEPT_KEYS), now=CUTOFF - 7 * 86_400)

    assert again == SubmitResult(replayed=None, stored=len(EXPIRED_KEYS), duplicates=len(KEPT_KEYS))


def test_purge_twice_removes_nothing_the_second_time(store: Store) -> None:
    build_data_of_every_age(store)
    store.purge(now=PURGE_AT, retention_seconds=RETENTION)

    assert store.purge(now=PURGE_AT, retention_seconds=RETENTION) == PurgeCounts()


def test_a_published_key_is_remembered_until_its_retention_ends(store: Store) -> None:
    published = key(1, days_ago=1)  # ended at TODAY's start
    submit(store, submission("s1", [published]))
    ids = [p.id for p in store.pending_keys(now=NOW, limit=10)]
    commit_at(store, NOW, ids)
    expires = TODAY * 600 + RETENTION

    store.purge(now=expires - 1, retention_seconds=RETENTION)
    assert submit(store, submission("s2", [published]), now=expires - 1).duplicates == 1
    store.purge(now=expires, retention_seconds=RETENTION)
    assert submit(store, submission("s3", [published]), now=expires - 1).stored == 1
