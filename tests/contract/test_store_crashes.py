"""A publisher SIGKILLed in the middle of a cut leaves either nothing or a complete batch, never half of one."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections import Counter

from matcher.store import BatchCommit, LockLost, Store, open_store
from matcher.store.sqlite import SqliteStore
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
KEYS = 600
# The doomed publisher's lease: far longer than one of its rounds (lock, read 7 keys, commit a 2 MB body) takes
# even on busy cores, so that it commits batch after batch until it is killed; a round that outlives it all the
# same is refused whole (LockLost) and the loop goes on. The survivor waits for it to run out after the kill.
CRASH_LEASE = 2.0
PADDING = 2_000_000  # large bodies keep a commit busy long enough to be interrupted in the middle of it


def submit_keys(store: Store) -> set[bytes]:
    for start in range(0, KEYS, 30):
        submit(store, submission(f"s{start}", [key(n) for n in range(start, start + 30)]))
    return {key(n).key_data for n in range(KEYS)}


def assert_each_key_pending_or_in_exactly_one_batch(store: Store, keys: set[bytes]) -> None:
    published, pending = published_key_data(store), pending_key_data(store)
    assert set(published.values()) <= {1}
    assert not published.keys() & pending.keys()
    assert published.keys() | pending.keys() == keys
    assert set(pending.values()) <= {1}


def drain_after_the_dead_lease(store: Store) -> None:
    """Waits until the killed publisher's lease has run out (the survivor can take the lock), then publishes
    everything still pending."""
    deadline = time.monotonic() + CRASH_LEASE + 60
    while store.acquire_publish_lock("survivor", CRASH_LEASE) is None:
        assert time.monotonic() < deadline, "the dead publisher's lease never ran out"
        time.sleep(0.02)
    while publish_once(store, "survivor"):
        pass


def publish_forever(url: str, started: multiprocessing.synchronize.Event) -> None:
    """Commits small batches with big bodies in a loop until it is killed (``started`` once one is committed).
    A commit refused because the lease ran out first changed nothing: the next round takes the lock again."""
    store = open_store(url)
    while True:
        fence = store.acquire_publish_lock("doomed", CRASH_LEASE)
        pending = store.pending_keys(now=NOW, limit=7)
        if fence is None or not pending:
            time.sleep(0.001)
            continue
        try:
            store.commit_batch(
                BatchCommit(
                    owner="doomed",
                    fence=fence,
                    sequence=store.last_sequence() + 1,
                    published_at=NOW,
                    signed_header=b"header",
                    body=encode_body((p.key for p in pending), padding=PADDING),
                    key_ids=[p.id for p in pending],
                    now=NOW,
                    retention_seconds=RETENTION,
                )
            )
        except LockLost:
            continue
        started.set()


def test_a_publisher_killed_while_committing_in_a_loop_leaves_only_complete_batches(
    store: Store, store_url: str
) -> None:
    keys = submit_keys(store)
    started = FORK.Event()
    doomed = FORK.Process(target=publish_forever, args=(store_url, started))
    doomed.start()
    assert started.wait(60), "the publisher never committed"

    time.sleep(random.uniform(0, 0.05))
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join()

    assert_each_key_pending_or_in_exactly_one_batch(store, keys)
    assert store.last_sequence() == len(store.list_batches(after=0, limit=10_000)) >= 1
    drain_after_the_dead_lease(store)
    assert published_key_data(store) == dict.fromkeys(keys, 1)


# --- SQLite: killed inside the commit transaction --------------------------------------------------------------


def commit_and_hang(path: str, hang_inside: bool, reached: multiprocessing.synchronize.Event) -> None:
    """Commits one batch and hangs, either inside the commit transaction (its batch row written and its keys
    removed, not yet committed) or after it returned; the test kills it there."""
    store = SqliteStore(path)
    if hang_inside:
        remove_pending = SqliteStore._remove_pending

        def remove_then_hang(self: SqliteStore, *args: object) -> None:
            remove_pending(self, *args)
            reached.set()
            time.sleep(600)

        SqliteStore._remove_pending = remove_then_hang  # type: ignore[method-assign]
    # Releases the lock only if not killed first; a round refused because its lease ran out is tried again.
    while publish_once(store, "doomed", lease=CRASH_LEASE) is None:
        pass
    reached.set()
    time.sleep(600)


def kill_sqlite_publisher(path: str, *, hang_inside: bool) -> None:
    reached = FORK.Event()
    doomed = FORK.Process(target=commit_and_hang, args=(path, hang_inside, reached))
    doomed.start()
    assert reached.wait(60)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join()


def test_a_sqlite_publisher_killed_inside_its_commit_transaction_leaves_nothing(tmp_path) -> None:
    path = str(tmp_path / "store.db")
    store = SqliteStore(path)
    keys = submit_keys(store)

    kill_sqlite_publisher(path, hang_inside=True)

    assert store.last_sequence() == 0
    assert store.list_batches(after=0, limit=10) == []
    assert pending_key_data(store) == dict.fromkeys(keys, 1)
    drain_after_the_dead_lease(store)
    assert published_key_data(store) == dict.fromkeys(keys, 1)


def test_a_sqlite_publisher_killed_right_after_its_commit_leaves_the_complete_batch(tmp_path) -> None:
    path = str(tmp_path / "store.db")
    store = SqliteStore(path)
    keys = submit_keys(store)

    kill_sqlite_publisher(path, hang_inside=False)

    assert store.last_sequence() == 1
    assert published_key_data(store) == dict.fromkeys(keys, 1)
    assert pending_key_data(store) == Counter()
