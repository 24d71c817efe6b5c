"""The anonymity hold: a section of a batch is published once its keys belong to K cases, or once its oldest key
has waited the deadline; everything else about a run (exactly once, gapless sequences, the false-positive budget)
holds with it. The rule on its own (hold_small_sections), then the publisher over a real SQLite file."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path

import pytest

from matcher.anonymity import hold_small_sections, publishable_since
from matcher.batches import SectionClass
from matcher.exposure_config import default_config, sign_config
from matcher.fprate import error_rate_for
from matcher.metrics import REGISTRY
from matcher.model import EMBARGO_GRACE_SECONDS, DiagnosisKey, Infectiousness, ReportType, Submission
from matcher.publisher import Held, Publisher, PublishLoop
from matcher.signing import TrustedKeys, generate_signing_key
from matcher.store import PendingKey, Store
from matcher.store.sqlite import SqliteStore
from tests.contract.builders import NOW, RETENTION, TODAY
from tests.support.published import batches_holding, published_batches

K = 5
DEADLINE = 86_400
HOUR = 3600
SIGNING_KEY = generate_signing_key()
TRUSTED = TrustedKeys([SIGNING_KEY.verifying_key()])
TESTS_AND_DIAGNOSES = (ReportType.CONFIRMED_TEST, ReportType.CONFIRMED_CLINICAL_DIAGNOSIS)
BOTH_LEVELS = (Infectiousness.STANDARD, Infectiousness.HIGH)


def key(
    case: int,
    n: int = 0,
    *,
    days_ago: int = 1,
    report_type: ReportType = ReportType.CONFIRMED_TEST,
    days_since_onset: int | None = 0,
) -> DiagnosisKey:
    """Key ``n`` of case ``case``, of the day ``days_ago`` before TODAY (publishable at NOW when 1 or more)."""
    data = hashlib.sha256(b"case %d key %d day %d" % (case, n, days_ago)).digest()[:16]
    return DiagnosisKey(data, TODAY - 144 * days_ago, 144, report_type, days_since_onset)


def pending(case: int, n: int = 0, *, received_at: int = NOW, region: str = "VN", **fields) -> PendingKey:
    k = key(case, n, **fields)
    return PendingKey(k.key_data.hex(), k, region, f"case-{case}", received_at)


def cut(items: list[PendingKey], *, now: int = NOW, min_cases: int = K, deadline: int = DEADLINE, config=None):
    return hold_small_sections(items, config or default_config(), now=now, min_cases=min_cases, deadline=deadline)


def cases_of(items: list[PendingKey]) -> set[str]:
    return {item.case for item in items}


def levels_apart():
    """A configuration under which STANDARD and HIGH are separate sections."""
    config = default_config()
    config.weight_infectiousness_standard = 0.6
    return config


# --- the rule ------------------------------------------------------------------------------------------------------


def test_a_section_whose_keys_belong_to_k_cases_is_published_at_once():
    items = [pending(case) for case in range(K)]

    decided = cut(items)

    assert decided.released == items and decided.sections == 1 and decided.held == []


def test_a_section_of_fewer_cases_is_held_until_its_oldest_key_has_waited_the_deadline():
    items = [pending(0, received_at=NOW - HOUR)] + [pending(case) for case in range(1, K - 1)]

    before = cut(items, now=NOW - HOUR + DEADLINE - 1)
    at = cut(items, now=NOW - HOUR + DEADLINE)

    [held] = before.held
    assert (held.keys, held.cases, held.until) == (items, K - 1, NOW - HOUR + DEADLINE)
    assert before.released == [] and before.sections == 0
    assert at.released == items and at.sections == 1 and at.held == []


def test_cases_are_counted_not_keys():
    one_person = [pending(0, n, days_ago=1 + n) for n in range(10)]

    assert cut(one_person).held[0].cases == 1 and cut(one_person).released == []
    assert cut(one_person, min_cases=1).released == one_person


def test_one_section_is_held_while_another_publishes():
    tests = [pending(case) for case in range(K)]
    self_report = [pending(K, report_type=ReportType.SELF_REPORT)]

    decided = cut(tests + self_report)

    assert decided.released == tests and decided.sections == 1
    [held] = decided.held
    assert held.section == SectionClass((ReportType.SELF_REPORT,), BOTH_LEVELS) and held.keys == self_report


def test_a_case_with_keys_in_two_sections_counts_in_both():
    # Each of K cases has a HIGH key (day 0 since onset) and a STANDARD one (day 5), in two sections.
    both = [pending(case, 0, days_since_onset=0) for case in range(K)] + [
        pending(case, 1, days_ago=2, days_since_onset=5) for case in range(K - 1)
    ]

    decided = cut(both, config=levels_apart())

    assert cases_of(decided.released) == {f"case-{case}" for case in range(K)} and decided.sections == 1
    [held] = decided.held
    assert held.section == SectionClass(TESTS_AND_DIAGNOSES, (Infectiousness.STANDARD,))
    assert held.cases == K - 1


def test_the_deadline_counts_from_when_a_key_could_first_be_published():
    # Received before its day ended: it may not be published before its embargo is over, and its wait starts then.
    early = pending(0, days_ago=0, received_at=NOW)
    embargo_ends = (TODAY + 144) * 600 + EMBARGO_GRACE_SECONDS
    assert publishable_since(early) == embargo_ends > NOW

    assert cut([early], now=embargo_ends + DEADLINE - 1).held[0].until == embargo_ends + DEADLINE
    assert cut([early], now=embargo_ends + DEADLINE).released == [early]


def test_keys_that_publish_nothing_go_with_the_batch_and_do_not_count_as_a_section():
    none = pending(9, days_since_onset=-10)  # infectiousness NONE
    revoked = pending(8, report_type=ReportType.REVOKED)

    decided = cut([none, revoked])

    assert decided.released == [none, revoked] and decided.sections == 0 and decided.held == []


def test_a_case_whose_keys_publish_no_interval_does_not_count_towards_k():
    # Contact-interval pruning left one case's key with no interval: it adds no element, so the section still
    # holds only K - 1 cases that anyone could match.
    pruned = pending(K - 1)
    pruned = PendingKey(pruned.id, replace(pruned.key, contact_intervals=bytes(18)), "VN", pruned.case, NOW)
    others = [pending(case) for case in range(K - 1)]

    decided = cut([*others, pruned])

    assert decided.released == [pruned] and decided.sections == 0
    assert [(held.keys, held.cases) for held in decided.held] == [(others, K - 1)]


def test_k_of_one_or_a_deadline_of_zero_holds_nothing():
    lone = [pending(0)]

    assert cut(lone, min_cases=1).released == lone
    assert cut(lone, deadline=0).released == lone


def test_a_key_received_after_the_publishers_now_has_waited_nothing_yet():
    # A replica whose clock is behind the submitter's: the key is due (its embargo is over) but "arrives later".
    ahead = pending(0, received_at=NOW + 60)

    assert cut([ahead], deadline=0).released == [ahead]
    assert cut([ahead]).held[0].until == NOW + 60 + DEADLINE


# --- the publisher over a real store --------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path):
    opened = SqliteStore(tmp_path / "store.db")
    yield opened
    opened.close()


def publisher(store: Store, *, max_keys: int = 200_000, min_cases: int = K) -> Publisher:
    return Publisher(
        store,
        SIGNING_KEY,
        retention_days=14,
        publish_interval=HOUR,
        max_keys_per_batch=max_keys,
        anonymity_min_cases=min_cases,
        anonymity_deadline=DEADLINE,
    )


def submit_case(store: Store, case: int, keys: list[DiagnosisKey], *, now: int = NOW, region: str = "VN") -> None:
    digest = hashlib.sha256(b"".join(k.fingerprint() for k in keys)).digest()
    store.submit(
        Submission("ha", f"case-{case}", region, tuple(keys), digest),
        response=b"",
        now=now,
        retention_seconds=RETENTION,
    )


def as_key_like(keys: list[DiagnosisKey]) -> list[tuple[bytes, int, int]]:
    return [(k.key_data, k.rolling_start, k.rolling_period) for k in keys]


def batch_of_each(store: Store, keys: list[DiagnosisKey]) -> list[int | None]:
    """For each key, the sequence of the batch that holds it (None when none does; AssertionError if several)."""
    batches = published_batches(store, TRUSTED)
    found: list[int | None] = [None] * len(keys)
    for batch in batches:
        for n, count in enumerate(batches_holding(as_key_like(keys), [batch])):
            if count:
                assert found[n] is None, f"key {n} is in batches {found[n]} and {batch.header.sequence}"
                found[n] = batch.header.sequence
    return found


def test_a_lone_case_is_held_then_published_exactly_once_when_its_deadline_has_passed(store):
    lone = [key(0, n, days_ago=1 + n) for n in range(3)]
    submit_case(store, 0, lone)
    run = publisher(store)

    first = run.publish(NOW)
    just_before = run.publish(NOW + DEADLINE - 1)
    sequence_while_held = store.last_sequence()
    at_deadline = run.publish(NOW + DEADLINE)
    after = run.publish(NOW + DEADLINE + HOUR)

    assert first.batches == just_before.batches == [] and sequence_while_held == 0
    assert first.held == just_before.held == [Held("VN", keys=3, sections=1, until=NOW + DEADLINE)]
    [batch] = at_deadline.batches
    assert (batch.sequence, batch.keys, batch.keys_published) == (1, 3, 3) and at_deadline.held == []
    assert after.batches == after.held == []
    assert batch_of_each(store, lone) == [1, 1, 1]


def test_held_keys_are_published_with_the_cases_that_bring_their_section_to_k(store):
    early = [key(case) for case in range(K - 2)]
    late = [key(case) for case in range(K - 2, K)]
    for case, k in enumerate(early):
        submit_case(store, case, [k])
    run = publisher(store)

    assert run.publish(NOW).held == [Held("VN", keys=K - 2, sections=1, until=NOW + DEADLINE)]
    for case, k in zip(range(K - 2, K), late):
        submit_case(store, case, [k], now=NOW + HOUR)
    [batch] = run.publish(NOW + HOUR).batches

    assert batch.keys == K and batch_of_each(store, early + late) == [1] * K
    assert run.publish(NOW + DEADLINE).batches == []


def test_a_region_whose_keys_are_all_held_cuts_no_batch_and_sequence_numbers_stay_gapless(store):
    submit_case(store, 0, [key(0)], region="DE")
    for case in range(1, K + 1):
        submit_case(store, case, [key(case)], region="VN")
    run = publisher(store)

    now = run.publish(NOW)
    later = run.publish(NOW + DEADLINE)

    assert [(b.sequence, b.region, b.keys) for b in now.batches] == [(1, "VN", K)]
    assert now.held == [Held("DE", keys=1, sections=1, until=NOW + DEADLINE)]
    assert [(b.sequence, b.region, b.keys) for b in later.batches] == [(2, "DE", 1)]
    assert [b.header.sequence for b in published_batches(store, TRUSTED)] == [1, 2]


def test_the_false_positive_budget_is_shared_only_by_the_batches_a_run_cuts(store):
    for case in range(K):
        submit_case(store, case, [key(case)], region="VN")
        submit_case(store, 100 + case, [key(100 + case)], region="TH")
    submit_case(store, 200, [key(200)], region="DE")  # held: cuts nothing, takes no share

    batches = publisher(store).publish(NOW).batches

    assert [b.region for b in batches] == ["TH", "VN"]
    # two batches of equal elements: each gets half of the period's squared budget, the held keys nothing
    run = error_rate_for(retention_days=14, publish_interval_seconds=HOUR)
    assert [b.error_rate for b in batches] == pytest.approx([run / math.sqrt(2)] * 2, rel=1e-6)


def test_held_keys_that_fill_whole_reads_neither_stop_the_run_nor_hide_the_newer_keys_behind_them(store):
    # A lone case whose keys come first in every read (the oldest publish times) and fill it: four keys that
    # would be published and one that publishes nothing (infectiousness NONE), held with them.
    lone = [key(0, n, days_ago=5 + n) for n in range(4)] + [key(0, 4, days_ago=9, days_since_onset=-10)]
    submit_case(store, 0, lone)
    newer = [key(case) for case in range(1, K + 1)]
    for case, k in zip(range(1, K + 1), newer):
        submit_case(store, case, [k])
    run = publisher(store, max_keys=len(lone))

    first = run.publish(NOW)

    [batch] = first.batches
    assert batch.keys == K and first.held == [Held("VN", keys=4, sections=1, until=NOW + DEADLINE)]
    assert batch_of_each(store, newer) == [1] * K
    assert {p.key for p in store.pending_keys(now=NOW, limit=100)} == set(lone)
    [last] = run.publish(NOW + DEADLINE).batches
    assert last.keys == 5 and batch_of_each(store, lone[:4]) == [2] * 4
    assert store.pending_keys(now=NOW + DEADLINE, limit=100) == []


def test_reads_after_a_full_one_reach_every_due_key_once(store):
    # Six single-key cases, three keys a read: the first read holds three cases, the second holds three more;
    # nothing is read twice and the run ends.
    for case in range(6):
        submit_case(store, case, [key(case, days_ago=1 + case)])

    first = publisher(store, max_keys=3).publish(NOW)

    assert first.batches == [] and first.held == [Held("VN", keys=6, sections=1, until=NOW + DEADLINE)]
    # At the deadline a batch still takes at most max_keys_per_batch keys; the next read takes the rest.
    assert [b.keys for b in publisher(store, max_keys=3).publish(NOW + DEADLINE).batches] == [3, 3]


def test_a_run_reports_what_it_held_in_the_metrics(store):
    submit_case(store, 0, [key(0), key(0, 1, days_ago=2)])

    publisher(store).publish(NOW)
    held = REGISTRY.value("matcher_keys_held")
    publisher(store).publish(NOW + DEADLINE)

    assert held == 2 and REGISTRY.value("matcher_keys_held") == 0
    assert "# TYPE matcher_keys_held gauge" in REGISTRY.render()


def test_a_changed_configuration_regroups_the_cases_before_the_hold_counts_them(store):
    # K cases with one HIGH and one STANDARD key each: one section of K cases by default; under a configuration
    # that weighs the levels apart, two sections of K cases each, both published at once.
    config = levels_apart()
    config.version = 2
    store.put_exposure_config(
        sign_config(config, SIGNING_KEY).SerializeToString(), replacing=store.get_exposure_config()
    )
    for case in range(K):
        submit_case(store, case, [key(case, 0, days_since_onset=0), key(case, 1, days_ago=2, days_since_onset=5)])

    [batch] = publisher(store).publish(NOW).batches

    assert (batch.keys, batch.sections) == (2 * K, 2)


def test_the_publish_loop_purges_expired_data_even_when_publishing_fails(store):
    class FailingPublisher:  # publishing broken (a signing key gone, a bug): retention must not wait for a fix
        def publish(self, now: int) -> None:
            raise RuntimeError("publishing is broken")

    submit_case(store, 1, [key(1)])
    expired = NOW + 2 * RETENTION
    loop = PublishLoop(FailingPublisher(), store, lambda: expired, interval=3600, retention_seconds=RETENTION)
    with pytest.raises(RuntimeError, match="publishing is broken"):
        loop.run_once()
    assert store.pending_keys(now=expired, limit=10) == []
