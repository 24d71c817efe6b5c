"""The anonymity hold under concurrency, on SQLite and on Redis: submitters store cases from four threads while two
publishers, each with its own store connection and lock owner, race to cut batches with reads far smaller than
what is pending (so that held keys fill reads and runs loop). Whatever the interleaving, every section cut before
the deadline holds keys of at least K cases, and once the deadline has passed every key is in exactly one batch.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.redis_server import RedisServer
from matcher.model import DiagnosisKey, ReportType, Submission
from matcher.publisher import Publisher
from matcher.signing import TrustedKeys, generate_signing_key
from matcher.store import Store, open_store
from tests.contract.builders import NOW, RETENTION, TODAY
from tests.support.published import check_exactly_once, published_batches, sections_holding

K = 5
DEADLINE = 86_400
CASES = 160
SUBMITTERS = 4
PUBLISHERS = 2
READ = 40  # max_keys_per_batch: far fewer than the ~320 keys submitted, so reads fill and runs loop
SIGNING_KEY = generate_signing_key()
TRUSTED = TrustedKeys([SIGNING_KEY.verifying_key()])


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:{tmp_path / 'store.db'}"
        return
    with RedisServer(tmp_path / "redis") as server:
        yield server.url


def case_keys(case: int, rng: random.Random) -> tuple[str, list[DiagnosisKey]]:
    """A case's region and its 1-3 daily keys, all of one report type (so all in one section)."""
    region = rng.choice(["VN", "TH"])
    report_type = rng.choice([ReportType.CONFIRMED_TEST, ReportType.SELF_REPORT])
    keys = [
        DiagnosisKey(
            hashlib.sha256(b"case %d day %d" % (case, day)).digest()[:16], TODAY - 144 * day, 144, report_type, 0
        )
        for day in range(1, rng.randint(1, 3) + 1)
    ]
    return region, keys


def submit_cases(
    url: str,
    cases: list[int],
    plan: dict[int, tuple[str, list[DiagnosisKey]]],
    start: threading.Barrier,
    errors: list[BaseException],
) -> None:
    store = open_store(url)
    try:
        start.wait()
        for case in cases:
            region, keys = plan[case]
            digest = hashlib.sha256(b"".join(k.fingerprint() for k in keys)).digest()
            store.submit(
                Submission("ha", f"case-{case}", region, tuple(keys), digest),
                response=b"",
                now=NOW,
                retention_seconds=RETENTION,
            )
    except BaseException as error:
        errors.append(error)
        start.abort()  # the others stop waiting for this one
    finally:
        store.close()


def publish_until(
    url: str, owner: str, start: threading.Barrier, done: threading.Event, errors: list[BaseException]
) -> None:
    """Publishes over and over until the submitters are done, and once more after that."""
    store = open_store(url)
    publisher = Publisher(
        store,
        SIGNING_KEY,
        retention_days=14,
        publish_interval=3600,
        max_keys_per_batch=READ,
        owner=owner,
        anonymity_min_cases=K,
        anonymity_deadline=DEADLINE,
    )
    try:
        start.wait()
        while True:
            finished = done.is_set()
            publisher.publish(NOW)
            if finished:
                break
    except BaseException as error:
        errors.append(error)
        start.abort()  # the others stop waiting for this one
    finally:
        store.close()


def cases_by_section(store: Store, plan: dict[int, tuple[str, list[DiagnosisKey]]]) -> dict[tuple[int, int], set[int]]:
    """(batch sequence, section index) -> the cases whose keys it holds; every batch's published_at is NOW or
    NOW + DEADLINE."""
    batches = published_batches(store, TRUSTED)
    owners = [(case, key) for case, (_, keys) in plan.items() for key in keys]
    where = sections_holding([(k.key_data, k.rolling_start, k.rolling_period) for _, k in owners], batches)
    found: dict[tuple[int, int], set[int]] = defaultdict(set)
    for batch, row in zip(batches, where):
        for (case, _), section in zip(owners, row.tolist()):
            if section >= 0:
                found[(batch.header.sequence, section)].add(case)
    return found


def test_racing_publishers_cut_no_section_of_fewer_than_k_cases_before_the_deadline_and_publish_every_key_once(
    store_url,
):
    rng = random.Random(7)
    plan = {case: case_keys(case, rng) for case in range(CASES)}
    # The file is made here, once: six connections creating one SQLite file at the same moment can meet
    # "database is locked" while switching it to WAL, which is not what this test is about.
    open_store(store_url).close()
    done, errors, start = threading.Event(), [], threading.Barrier(PUBLISHERS + SUBMITTERS)
    publishers = [
        threading.Thread(target=publish_until, args=(store_url, f"publisher-{n}", start, done, errors))
        for n in range(PUBLISHERS)
    ]
    submitters = [
        threading.Thread(target=submit_cases, args=(store_url, list(range(n, CASES, SUBMITTERS)), plan, start, errors))
        for n in range(SUBMITTERS)
    ]
    for thread in publishers + submitters:
        thread.start()
    for thread in submitters:
        thread.join()
    done.set()
    for thread in publishers:
        thread.join()
    assert errors == []

    store = open_store(store_url)
    try:
        last = Publisher(
            store,
            SIGNING_KEY,
            retention_days=14,
            publish_interval=3600,
            max_keys_per_batch=READ,
            anonymity_min_cases=K,
            anonymity_deadline=DEADLINE,
        )
        cut_before = store.last_sequence()  # every batch so far was cut at NOW, before any deadline
        at_deadline = last.publish(NOW + DEADLINE)

        every_key = [(k.key_data, k.rolling_start, k.rolling_period) for _, keys in plan.values() for k in keys]
        check_exactly_once(store, TRUSTED, every_key)
        sections = cases_by_section(store, plan)
        small = {place: len(cases) for place, cases in sections.items() if place[0] <= cut_before and len(cases) < K}
        assert small == {}, f"sections cut before the deadline with fewer than {K} cases: {small}"
        assert cut_before >= 1 and at_deadline.held == []
        assert store.pending_keys(now=NOW + DEADLINE, limit=10) == []
    finally:
        store.close()
