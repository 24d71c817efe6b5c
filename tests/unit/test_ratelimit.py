"""The one token bucket (matcher/ratelimit.py), on a clock the test sets: it refills at its rate, holds at most its
capacity, and forgets a caller once its bucket is full again or too many callers are remembered."""

from __future__ import annotations

import pytest

from matcher.ratelimit import TokenBuckets


def test_a_bucket_spends_its_burst_then_refuses_saying_how_long_to_wait_and_refills_with_time():
    buckets = TokenBuckets()
    assert [buckets.take("a", 6, 60.0, now=0.0) for _ in range(6)] == [None] * 6
    assert buckets.take("a", 6, 60.0, now=0.0) == pytest.approx(10.0)  # one token every 10 s
    assert buckets.take("a", 6, 60.0, now=4.0) == pytest.approx(6.0)  # a refusal spends nothing
    assert buckets.take("a", 6, 60.0, now=10.0) is None  # refilled by one
    assert buckets.take("a", 6, 60.0, now=10.0) == pytest.approx(10.0)
    assert [buckets.take("a", 6, 60.0, now=1000.0) for _ in range(7)][-2:] == [None, pytest.approx(10.0)]  # never
    # more than its capacity, however long it waited


def test_buckets_of_different_keys_are_independent():
    buckets = TokenBuckets()
    assert buckets.take("a", 1, 60.0, now=0.0) is None
    assert buckets.take("a", 1, 60.0, now=0.0) is not None
    assert buckets.take("b", 1, 60.0, now=0.0) is None


def test_a_budget_of_zero_refuses_everything():
    buckets = TokenBuckets()
    assert buckets.take("a", 0, 60.0, now=0.0) == 60.0


def test_a_caller_is_forgotten_once_its_bucket_is_full_again():
    buckets = TokenBuckets()
    buckets.take("a", 6, 60.0, now=0.0)
    buckets.take("b", 6, 60.0, now=5.0)
    assert "a" in buckets and "b" in buckets
    buckets.take("c", 6, 60.0, now=10.5)  # a's one token is back after 10 s: a is full and forgotten
    assert "a" not in buckets and "b" in buckets and len(buckets) == 2


def test_no_more_callers_are_remembered_than_the_bound_the_least_recently_seen_going_first():
    buckets = TokenBuckets(max_keys=3)
    for n in range(10):
        buckets.take(f"peer-{n}", 6, 60.0, now=0.0)
    assert len(buckets) == 3 and all(f"peer-{n}" in buckets for n in (7, 8, 9))
