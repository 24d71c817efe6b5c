"""The storage contract (matcher/store/base.py), the same for every backend: submissions, codes, publishing,
batches and the exposure configuration. Retention, concurrency and crashes have their own files."""

from __future__ import annotations

import hashlib
import time
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from clients.redis_server import RedisServer
from matcher import codes
from matcher.errors import AlreadyExists, NotFound, PermissionDenied
from matcher.model import EMBARGO_GRACE_SECONDS, DiagnosisKey, ReportType, Submission, VenueHour
from matcher.store import BatchCommit, CodeRecord, LockLost, Store, StoredBatch, StoreError, SubmitResult, open_store
from tests.contract.builders import (
    AUTHORITY,
    LEASE,
    NOW,
    RETENTION,
    TODAY,
    key,
    pending_key_data,
    publish_once,
    published_key_data,
    response_for,
    submission,
    submit,
)
from tests.support.read_only import read_only

CODE = b"\x01" * 32


def commit(store: Store, owner: str, fence: int, sequence: int, key_ids: list[str], body: bytes = b"body") -> None:
    store.commit_batch(
        BatchCommit(
            owner=owner,
            fence=fence,
            sequence=sequence,
            published_at=NOW,
            signed_header=f"header {sequence}".encode(),
            body=body,
            key_ids=key_ids,
            now=NOW,
            retention_seconds=RETENTION,
        )
    )


def code_record(expires_at: int = NOW + 3600) -> CodeRecord:
    return CodeRecord(AUTHORITY, "VN", int(ReportType.CONFIRMED_TEST), "2020-03-30", expires_at)


# --- submissions -----------------------------------------------------------------------------------------------


def test_a_submission_stores_its_keys_as_pending_with_their_fields_and_region(store: Store) -> None:
    every_field_set = key(
        2, report_type=ReportType.SELF_REPORT, days_since_onset=-3, contact_intervals=bytes([0b1011]) + bytes(17)
    )
    optional = [f.name for f in fields(DiagnosisKey) if f.default is not MISSING]
    assert all(getattr(every_field_set, name) != getattr(key(0), name) for name in optional), "a field is not tested"
    keys = [key(1), every_field_set, key(3, days_ago=2, period=100, days_since_onset=14, contact_intervals=bytes(13))]

    result = submit(store, submission("s1", keys, region="DE"))

    assert result == SubmitResult(replayed=None, stored=3, duplicates=0)
    pending = store.pending_keys(now=NOW, limit=10)
    assert {(p.key, p.region, p.received_at) for p in pending} == {(k, "DE", NOW) for k in keys}
    assert len({p.id for p in pending}) == 3
    assert len({p.case for p in pending}) == 1


def test_the_keys_of_one_submission_share_a_case_that_no_other_submission_has(store: Store) -> None:
    submit(store, submission("s1", [key(1), key(2)]))
    submit(store, submission("s1", [key(3)], authority="other.example"))
    submit(store, submission("s2", [key(4), key(5)]))

    case_of = {p.key.key_data: p.case for p in store.pending_keys(now=NOW, limit=10)}

    assert case_of[key(1).key_data] == case_of[key(2).key_data] and case_of[key(4).key_data] == case_of[key(5).key_data]
    assert len({case_of[key(n).key_data] for n in (1, 3, 4)}) == 3
    # A case is random: the same submission id from two authorities gets two unrelated ones, naming neither.
    assert all(case and AUTHORITY not in case and "s1" not in case for case in case_of.values())


def test_a_pending_key_carries_the_time_its_submission_was_received(store: Store) -> None:
    submit(store, submission("s1", [key(1, days_ago=2)]))
    submit(store, submission("s2", [key(2)]), now=NOW + 600)

    received = {p.key.key_data: p.received_at for p in store.pending_keys(now=NOW + 600, limit=10)}

    assert received == {key(1).key_data: NOW, key(2).key_data: NOW + 600}


def test_a_key_already_held_keeps_the_case_and_time_of_the_submission_that_stored_it(store: Store) -> None:
    submit(store, submission("s1", [key(1)]))
    [first] = store.pending_keys(now=NOW, limit=10)

    submit(store, submission("s2", [key(1), key(2)]), now=NOW + 60)
    submit(store, submission("s2", [key(1), key(2)]), now=NOW + 120)  # a replay stores nothing, changes nothing

    by_key = {p.key.key_data: p for p in store.pending_keys(now=NOW + 120, limit=10)}
    assert by_key[key(1).key_data] == first
    assert by_key[key(2).key_data].case != first.case and by_key[key(2).key_data].received_at == NOW + 60


def test_a_replayed_submission_is_answered_as_the_first_time_and_stores_nothing_new(store: Store) -> None:
    first = submission("s1", [key(1), key(2)])
    submit(store, first)

    again = submit(store, first)

    assert again == SubmitResult(replayed=response_for("s1"))
    assert pending_key_data(store) == {key(1).key_data: 1, key(2).key_data: 1}


def test_replay_of_reads_what_submit_would_answer_without_writing(store: Store) -> None:
    first = submission("s1", [key(1)])
    lookup = {"now": NOW, "retention_seconds": RETENTION}
    assert store.replay_of(AUTHORITY, "s1", first.digest, **lookup) is None
    submit(store, first)

    assert store.replay_of(AUTHORITY, "s1", first.digest, **lookup) == response_for("s1")
    assert store.replay_of("other.example", "s1", first.digest, **lookup) is None
    with pytest.raises(AlreadyExists):
        store.replay_of(AUTHORITY, "s1", b"another digest", **lookup)
    assert store.replay_of(AUTHORITY, "s1", first.digest, now=NOW + RETENTION, retention_seconds=RETENTION) is None
    assert pending_key_data(store) == {key(1).key_data: 1}


def test_the_same_submission_id_with_other_content_is_already_exists_and_changes_nothing(store: Store) -> None:
    submit(store, submission("s1", [key(1)]))

    with pytest.raises(AlreadyExists) as refused:
        submit(store, submission("s1", [key(2)]))

    assert [v.field for v in refused.value.violations] == ["submission_id"]
    assert pending_key_data(store) == {key(1).key_data: 1}
    assert submit(store, submission("s1", [key(1)])).replayed == response_for("s1")


def test_the_same_submission_id_from_another_authority_is_another_submission(store: Store) -> None:
    submit(store, submission("s1", [key(1)], authority="a.example"))

    result = submit(store, submission("s1", [key(2)], authority="b.example"))

    assert result.stored == 1


def test_a_submission_id_is_free_again_once_its_record_is_past_retention(store: Store) -> None:
    submit(store, submission("s1", [key(1)]))

    later = submit(store, submission("s1", [key(2)]), now=NOW + RETENTION)

    assert later.stored == 1


def test_keys_already_held_from_another_submission_are_not_stored_twice(store: Store) -> None:
    submit(store, submission("s1", [key(1), key(2)]))

    result = submit(store, submission("s2", [key(2), key(3)]))

    assert result == SubmitResult(replayed=None, stored=1, duplicates=1)
    assert pending_key_data(store) == {key(n).key_data: 1 for n in (1, 2, 3)}


def test_the_same_key_data_with_another_start_is_another_key(store: Store) -> None:
    submit(store, submission("s1", [key(1, days_ago=1)]))

    result = submit(store, submission("s2", [key(1, days_ago=2)]))

    assert result.stored == 1


def test_a_key_repeated_within_one_submission_is_stored_once(store: Store) -> None:
    result = submit(store, submission("s1", [key(1), key(1)]))

    assert result == SubmitResult(replayed=None, stored=1, duplicates=1)
    assert pending_key_data(store) == {key(1).key_data: 1}


def test_a_published_key_pushed_again_is_not_published_again(store: Store) -> None:
    submit(store, submission("s1", [key(1)]))
    assert publish_once(store, "publisher") == 1

    result = submit(store, submission("s2", [key(1), key(2)]))
    publish_once(store, "publisher")

    assert result == SubmitResult(replayed=None, stored=1, duplicates=1)
    assert published_key_data(store) == {key(1).key_data: 1, key(2).key_data: 1}


def test_pending_keys_wait_for_their_embargo(store: Store) -> None:
    todays = key(1, days_ago=0)  # still valid at NOW: published only after it ends, plus the grace period
    submit(store, submission("s1", [todays, key(2)]))
    embargo_ends = (TODAY + 144) * 600 + EMBARGO_GRACE_SECONDS

    assert pending_key_data(store, now=embargo_ends - 1) == {key(2).key_data: 1}
    assert pending_key_data(store, now=embargo_ends) == {todays.key_data: 1, key(2).key_data: 1}


def test_pending_keys_come_oldest_publish_time_first_up_to_the_limit(store: Store) -> None:
    submit(store, submission("s1", [key(1, days_ago=1), key(2, days_ago=3)]))
    submit(store, submission("s2", [key(3, days_ago=2)]))

    first_two = store.pending_keys(now=NOW, limit=2)

    assert [p.key.key_data for p in first_two] == [key(2).key_data, key(3).key_data]


# --- one-time codes --------------------------------------------------------------------------------------------


def test_a_code_is_stored_once_and_read_without_being_consumed(store: Store) -> None:
    assert store.put_code(CODE, code_record(), now=NOW) is True
    assert store.put_code(CODE, code_record(NOW + 60), now=NOW) is False

    assert store.get_code(CODE, now=NOW) == code_record()
    assert store.get_code(CODE, now=NOW) == code_record()
    assert store.get_code(b"\x02" * 32, now=NOW) is None


def test_the_same_code_record_put_again_is_accepted_as_a_resend(store: Store) -> None:
    assert store.put_code(CODE, code_record(), now=NOW) is True

    assert store.put_code(CODE, code_record(), now=NOW) is True
    assert store.get_code(CODE, now=NOW) == code_record()


def test_a_code_is_unknown_at_its_expiry_and_its_hash_can_then_be_reused(store: Store) -> None:
    store.put_code(CODE, code_record(expires_at=NOW + 60), now=NOW)

    assert store.get_code(CODE, now=NOW + 60) is None
    assert store.put_code(CODE, code_record(expires_at=NOW + 7200), now=NOW + 60) is True
    assert store.get_code(CODE, now=NOW + 60) == code_record(expires_at=NOW + 7200)


def test_a_code_works_once(store: Store) -> None:
    store.put_code(CODE, code_record(), now=NOW)

    assert submit(store, submission("phone-1", [key(1)]), code_hash=CODE).stored == 1
    with pytest.raises(PermissionDenied) as second_use:
        submit(store, submission("phone-2", [key(2)]), code_hash=CODE)

    assert store.get_code(CODE, now=NOW) is None
    assert pending_key_data(store) == {key(1).key_data: 1}
    assert second_use.value.message == codes.REFUSED


def test_a_resent_submission_is_replayed_even_though_its_code_was_used_by_the_first_attempt(store: Store) -> None:
    store.put_code(CODE, code_record(), now=NOW)
    first = submission("phone-1", [key(1)])
    submit(store, first, code_hash=CODE)

    assert submit(store, first, code_hash=CODE).replayed == response_for("phone-1")


@pytest.mark.parametrize("case", ["unknown", "expired"])
def test_an_unknown_or_expired_code_is_refused_alike_and_nothing_is_stored(store: Store, case: str) -> None:
    store.put_code(CODE, code_record(expires_at=NOW), now=NOW - 60)
    code_hash = b"\x09" * 32 if case == "unknown" else CODE

    with pytest.raises(PermissionDenied) as refused:
        submit(store, submission("phone-1", [key(1)]), code_hash=code_hash)

    assert refused.value.message == codes.REFUSED
    assert pending_key_data(store) == {}
    assert submit(store, submission("phone-1", [key(2)])).stored == 1  # no submission record was kept either


# --- the publisher's lock --------------------------------------------------------------------------------------


def test_fencing_tokens_grow_with_every_acquisition_even_across_reopening(store: Store, store_url: str) -> None:
    tokens = [store.acquire_publish_lock("a", LEASE), store.acquire_publish_lock("a", LEASE)]
    store.release_publish_lock("a")
    tokens.append(store.acquire_publish_lock("b", LEASE))
    store.release_publish_lock("b")
    reopened = open_store(store_url)
    tokens.append(reopened.acquire_publish_lock("c", LEASE))
    reopened.close()

    assert all(isinstance(t, int) for t in tokens)
    assert tokens == sorted(set(tokens))  # strictly increasing


def test_a_held_lock_is_refused_to_another_owner_until_its_lease_expires(store: Store) -> None:
    first = store.acquire_publish_lock("a", 0.3)

    assert store.acquire_publish_lock("b", LEASE) is None
    time.sleep(0.4)
    takeover = store.acquire_publish_lock("b", LEASE)

    assert takeover is not None and first is not None and takeover > first


def test_only_the_owner_can_release_the_lock(store: Store) -> None:
    store.acquire_publish_lock("a", LEASE)

    store.release_publish_lock("b")
    assert store.acquire_publish_lock("b", LEASE) is None
    store.release_publish_lock("a")
    assert store.acquire_publish_lock("b", LEASE) is not None


# --- committing batches ----------------------------------------------------------------------------------------


def test_a_commit_publishes_the_batch_and_removes_exactly_its_keys_from_pending(store: Store) -> None:
    submit(store, submission("s1", [key(1), key(2), key(3)]))
    fence = store.acquire_publish_lock("a", LEASE)
    pending = store.pending_keys(now=NOW, limit=10)

    commit(store, "a", fence, 1, [p.id for p in pending[:2]], body=b"0123456789")

    assert store.last_sequence() == 1
    assert store.list_batches(after=0, limit=10) == [StoredBatch(1, NOW, b"header 1", 10)]
    assert store.read_body(1, 0, 100) == b"0123456789"
    assert store.pending_keys(now=NOW, limit=10) == pending[2:]


def venue_warning(submission_id: str, *hours: int) -> Submission:
    warned = tuple(VenueHour(bytes([hour % 251]) * 16, hour) for hour in hours)
    digest = hashlib.sha256(b"".join(h.fingerprint() for h in warned)).digest()
    return Submission(AUTHORITY, submission_id, "VN", (), digest, venue_hours=warned)


HOUR = NOW // 3600 - 5


def test_a_venue_warning_stores_its_hours_as_pending_items_published_at_once(store: Store) -> None:
    assert submit(store, venue_warning("v1", HOUR, HOUR + 1)) == SubmitResult(replayed=None, stored=2, duplicates=0)
    pending = store.pending_keys(now=0, limit=10)  # a warned hour need not wait for any embargo
    assert sorted((p.key for p in pending), key=lambda hour: hour.hour) == list(
        venue_warning("v", HOUR, HOUR + 1).venue_hours
    )
    assert {p.region for p in pending} == {"VN"}


def test_a_venue_hour_warned_again_is_held_once_and_leaves_with_its_batch(store: Store) -> None:
    submit(store, venue_warning("v1", HOUR))
    assert submit(store, venue_warning("v2", HOUR, HOUR + 1)).duplicates == 1
    submit(store, submission("s1", [key(1)]))
    fence = store.acquire_publish_lock("a", LEASE)
    pending = store.pending_keys(now=NOW, limit=10)
    commit(store, "a", fence, 1, [p.id for p in pending])
    assert store.pending_keys(now=NOW, limit=10) == []
    assert submit(store, venue_warning("v3", HOUR)).duplicates == 1  # published: never again


def state_of(store: Store) -> tuple:
    return store.last_sequence(), store.list_batches(after=0, limit=100), pending_key_data(store)


def test_a_commit_with_a_stale_fence_is_lock_lost_and_changes_nothing(store: Store) -> None:
    submit(store, submission("s1", [key(1)]))
    stale = store.acquire_publish_lock("a", 0.2)
    ids = [p.id for p in store.pending_keys(now=NOW, limit=10)]
    time.sleep(0.3)
    assert store.acquire_publish_lock("b", LEASE) is not None
    before = state_of(store)

    with pytest.raises(LockLost):
        commit(store, "a", stale, 1, ids)

    assert state_of(store) == before


def test_a_commit_after_the_lease_expired_is_lock_lost_even_if_nobody_took_over(store: Store) -> None:
    submit(store, submission("s1", [key(1)]))
    fence = store.acquire_publish_lock("a", 0.2)
    ids = [p.id for p in store.pending_keys(now=NOW, limit=10)]
    time.sleep(0.3)

    with pytest.raises(LockLost):
        commit(store, "a", fence, 1, ids)

    assert state_of(store) == (0, [], {key(1).key_data: 1})


def test_a_commit_after_releasing_the_lock_is_lock_lost(store: Store) -> None:
    submit(store, submission("s1", [key(1)]))
    fence = store.acquire_publish_lock("a", LEASE)
    ids = [p.id for p in store.pending_keys(now=NOW, limit=10)]
    store.release_publish_lock("a")

    with pytest.raises(LockLost):
        commit(store, "a", fence, 1, ids)

    assert state_of(store) == (0, [], {key(1).key_data: 1})


@pytest.mark.parametrize("sequence", [0, 1, 3])
def test_a_commit_with_a_sequence_that_does_not_follow_the_last_is_lock_lost_and_changes_nothing(
    store: Store, sequence: int
) -> None:
    submit(store, submission("s1", [key(1)]))
    publish_once(store, "a")
    submit(store, submission("s2", [key(2)]))
    fence = store.acquire_publish_lock("a", LEASE)
    ids = [p.id for p in store.pending_keys(now=NOW, limit=10)]
    before = state_of(store)

    with pytest.raises(LockLost):
        commit(store, "a", fence, sequence, ids)

    assert state_of(store) == before


def test_the_sequence_never_goes_back_even_after_every_batch_expired(store: Store) -> None:
    for n in (1, 2):
        submit(store, submission(f"s{n}", [key(n)]))
        publish_once(store, "a")

    store.purge(now=NOW + RETENTION, retention_seconds=RETENTION)

    assert store.list_batches(after=0, limit=10) == []
    assert store.last_sequence() == 2
    submit(store, submission("s3", [key(3, days_ago=0)]), now=NOW + RETENTION)
    assert publish_once(store, "a", now=NOW + RETENTION) == 3


# --- reading batches -------------------------------------------------------------------------------------------


def test_list_batches_pages_through_the_batches_in_sequence_order(store: Store) -> None:
    for n in range(1, 6):
        submit(store, submission(f"s{n}", [key(n)]))
        publish_once(store, "a")

    pages, after = [], 0
    while page := store.list_batches(after=after, limit=2):
        pages.append([b.sequence for b in page])
        after = page[-1].sequence

    assert pages == [[1, 2], [3, 4], [5]]


def test_batch_span_counts_exactly_the_batches_list_batches_returns(store: Store) -> None:
    for n in range(1, 6):
        submit(store, submission(f"s{n}", [key(n)]))
        publish_once(store, "a")

    for after in (-1, 0, 2, 4, 5, 2**64 - 1):
        listed = [b.sequence for b in store.list_batches(after=after, limit=100)] if after < 2**63 else []
        assert store.batch_span(after=after) == ((len(listed), listed[0], listed[-1]) if listed else (0, 0, 0))
    store.purge(now=NOW + RETENTION, retention_seconds=RETENTION)
    assert store.batch_span(after=0) == (0, 0, 0)


def test_batch_span_follows_batches_that_another_connection_commits_and_purges(store: Store, store_url: str) -> None:
    # Another store object is another connection, as a publisher in another process is: a span this one read (and
    # may keep) must not outlive a batch coming or going.
    publisher = open_store(store_url)
    try:
        assert store.batch_span(after=0) == (0, 0, 0)
        for n in (1, 2):
            submit(publisher, submission(f"s{n}", [key(n)]))
            publish_once(publisher, "a")
            assert store.batch_span(after=0) == (n, 1, n)
        assert store.batch_span(after=1) == (1, 2, 2)
        publisher.purge(now=NOW + RETENTION, retention_seconds=RETENTION)
        assert store.batch_span(after=0) == (0, 0, 0)
        assert store.batch_span(after=1) == (0, 0, 0)
    finally:
        publisher.close()


def test_read_body_returns_the_asked_range_and_nothing_past_the_end(store: Store) -> None:
    body = bytes(range(256)) * 40
    fence = store.acquire_publish_lock("a", LEASE)
    commit(store, "a", fence, 1, [], body=body)

    assert store.list_batches(after=0, limit=1)[0].body_size == len(body)
    assert store.read_body(1, 0, 100) == body[:100]
    assert store.read_body(1, 5000, 4096) == body[5000:9096]
    assert store.read_body(1, len(body) - 10, 4096) == body[-10:]
    assert store.read_body(1, len(body), 4096) == b""
    assert store.read_body(1, len(body) + 7, 10) == b""
    assert store.read_body(1, 10, 0) == b""


def test_read_body_of_an_unknown_or_purged_batch_is_not_found(store: Store) -> None:
    submit(store, submission("s1", [key(1)]))
    publish_once(store, "a")

    with pytest.raises(NotFound):
        store.read_body(2, 0, 10)
    store.purge(now=NOW + RETENTION, retention_seconds=RETENTION)
    with pytest.raises(NotFound):
        store.read_body(1, 0, 10)


# --- exposure configuration ------------------------------------------------------------------------------------


def test_the_exposure_configuration_is_replaced_by_the_latest_and_outlives_purge(store: Store) -> None:
    assert store.get_exposure_config() is None

    assert store.put_exposure_config(b"first", replacing=None)
    assert store.put_exposure_config(b"second", replacing=b"first")
    store.purge(now=NOW + 10 * RETENTION, retention_seconds=RETENTION)

    assert store.get_exposure_config() == b"second"


def test_a_configuration_derived_from_one_already_replaced_is_refused_and_changes_nothing(store: Store) -> None:
    assert store.put_exposure_config(b"version 1", replacing=None)
    assert not store.put_exposure_config(b"another version 1", replacing=None)
    assert store.put_exposure_config(b"version 2 by A", replacing=b"version 1")
    assert not store.put_exposure_config(b"version 2 by B", replacing=b"version 1")  # B read version 1 too

    assert store.get_exposure_config() == b"version 2 by A"


def test_ping_answers_on_a_working_store_and_raises_store_error_once_it_cannot_serve(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    assert store.ping() is None
    if store_url.startswith("sqlite:"):
        with read_only(Path(store_url.removeprefix("sqlite:"))):
            own = open_store(store_url)  # it opens and reads, but cannot write
            with pytest.raises(StoreError, match="readonly"):
                own.ping()
            own.close()
    else:
        with RedisServer(tmp_path / "redis") as server:
            own = open_store(server.url)
            assert own.ping() is None
            server.stop()
            with pytest.raises(StoreError, match="Connection refused"):
                own.ping()
            own.close()
    assert store.ping() is None
