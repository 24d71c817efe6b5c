"""Many writers and publishers at once, in threads and in processes (each process opens the store from its URL):
every key is stored once and published in exactly one batch."""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from matcher.store import BatchCommit, LockLost, Store, open_store
from tests.contract.builders import (
    NOW,
    RETENTION,
    encode_body,
    key,
    pending_key_data,
    publish_once,
    published_key_data,
    submission,
    submit,
)

FORK = multiprocessing.get_context("fork")
WRITERS = 4
SUBMISSIONS_PER_WRITER = 15
SHARED_KEYS = 5


def writer_submissions(writer: int) -> list:
    """A writer's submissions: 4 keys of its own and one shared with every other writer, then one submission that
    every writer sends with the same id and content."""
    subs = []
    for i in range(SUBMISSIONS_PER_WRITER):
        own = [key(10_000 * (writer + 1) + 4 * i + j) for j in range(4)]
        subs.append(submission(f"w{writer}-{i}", [*own, key(i % SHARED_KEYS)]))
    subs.append(submission("everyone", [key(999)]))
    return subs


def expected_keys() -> set[bytes]:
    return {k.key_data for w in range(WRITERS) for sub in writer_submissions(w) for k in sub.keys}


def write(url: str, writer: int) -> list[tuple[str, bool, int, int]]:
    """Sends a writer's submissions; (id, replayed, stored, duplicates) for each."""
    store = open_store(url)
    try:
        results = []
        for sub in writer_submissions(writer):
            result = submit(store, sub)
            results.append((sub.submission_id, result.replayed is not None, result.stored, result.duplicates))
        return results
    finally:
        store.close()


def assert_every_key_stored_once(store: Store, results: list[tuple[str, bool, int, int]]) -> None:
    everyone = [r for r in results if r[0] == "everyone"]
    assert sorted(replayed for _, replayed, _, _ in everyone) == [False] + [True] * (WRITERS - 1)
    assert sum(stored for _, _, stored, _ in results) == len(expected_keys())
    assert pending_key_data(store) == dict.fromkeys(expected_keys(), 1)


def test_writer_threads_at_once_store_every_key_exactly_once(store: Store, store_url: str) -> None:
    with ThreadPoolExecutor(WRITERS) as pool:
        results = [r for rs in pool.map(write, [store_url] * WRITERS, range(WRITERS)) for r in rs]

    assert_every_key_stored_once(store, results)


def test_threads_sharing_one_store_object_store_every_key_exactly_once(store: Store) -> None:
    def write_shared(writer: int) -> list[tuple[str, bool, int, int]]:
        return [
            (sub.submission_id, r.replayed is not None, r.stored, r.duplicates)
            for sub in writer_submissions(writer)
            for r in [submit(store, sub)]
        ]

    with ThreadPoolExecutor(WRITERS) as pool:
        results = [r for rs in pool.map(write_shared, range(WRITERS)) for r in rs]

    assert_every_key_stored_once(store, results)


def test_writer_processes_at_once_store_every_key_exactly_once(store: Store, store_url: str) -> None:
    with FORK.Pool(WRITERS) as pool:
        results = [r for rs in pool.starmap(write, [(store_url, w) for w in range(WRITERS)]) for r in rs]

    assert_every_key_stored_once(store, results)


# --- two publishers racing -------------------------------------------------------------------------------------

ROUNDS = 100
RACE_LEASE = 0.05


def race(url: str, owner: str, seed: int) -> Counter[str]:
    """ROUNDS publisher rounds with a short lease; a quarter of them pause past the lease between reading the
    pending keys and committing, so the other publisher can take over and this one's commit must be refused."""
    store = open_store(url)
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    try:
        for _ in range(ROUNDS):
            fence = store.acquire_publish_lock(owner, RACE_LEASE)
            if fence is None:
                outcomes["lock busy"] += 1
                time.sleep(0.002)
                continue
            pending = store.pending_keys(now=NOW, limit=20)
            sequence = store.last_sequence() + 1
            if rng.random() < 0.25:
                time.sleep(RACE_LEASE * 1.5)
            try:
                store.commit_batch(
                    BatchCommit(
                        owner=owner,
                        fence=fence,
                        sequence=sequence,
                        published_at=NOW,
                        signed_header=b"header",
                        body=encode_body(p.key for p in pending),
                        key_ids=[p.id for p in pending],
                        now=NOW,
                        retention_seconds=RETENTION,
                    )
                )
                outcomes["committed"] += 1
            except LockLost:
                outcomes["lock lost"] += 1
            store.release_publish_lock(owner)
        return outcomes
    finally:
        store.close()


def feed(url: str, count: int) -> None:
    """Submits ``count`` submissions of 3 keys, each key also in the next submission (duplicates on purpose)."""
    store = open_store(url)
    try:
        for i in range(count):
            submit(store, submission(f"feed-{i}", [key(2 * i), key(2 * i + 1), key(2 * i + 2)]))
    finally:
        store.close()


def test_two_publishers_racing_for_100_rounds_publish_every_key_in_exactly_one_batch(
    store: Store, store_url: str
) -> None:
    feeding = 200
    with FORK.Pool(3) as pool:
        feeder = pool.apply_async(feed, (store_url, feeding))
        racers = [pool.apply_async(race, (store_url, f"publisher-{n}", n)) for n in range(2)]
        feeder.get(timeout=120)
        outcomes = sum((r.get(timeout=120) for r in racers), Counter())
    while publish_once(store, "drain"):  # what the racers left behind
        pass

    print(f"race outcomes: {dict(outcomes)}")  # how often each path ran; shown with -s
    assert outcomes["committed"] > 0
    assert published_key_data(store) == {key(n).key_data: 1 for n in range(2 * feeding + 1)}
    assert pending_key_data(store) == {}
    assert [b.sequence for b in store.list_batches(after=0, limit=10_000)] == list(range(1, store.last_sequence() + 1))
