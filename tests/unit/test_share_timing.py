"""A decoy's answer waits to take about as long as a share's (matcher/share_timing.py), on a clock the test sets."""

from __future__ import annotations

import random

import pytest

from matcher.share_timing import CEILING_SECONDS, INITIAL_SECONDS, SPREAD, ShareTiming


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_decoys_take_a_time_around_the_moving_average_of_shares():
    clock = Clock()
    timing = ShareTiming(clock, clock.sleep, random.Random(3))
    assert timing.average == INITIAL_SECONDS
    for _ in range(100):  # shares that take 20 ms each
        began = clock.now
        clock.now += 0.020
        timing.shared(began)
    assert timing.average == pytest.approx(0.020, rel=1e-3)
    took = []
    for _ in range(1000):
        began = clock.now
        clock.now += 0.001  # the decoy's own reads
        timing.as_long_as_a_share(began)
        took.append(clock.now - began)
    low, high = timing.average * (1 - SPREAD), timing.average * (1 + SPREAD)
    assert min(took) >= low - 1e-9 and max(took) <= high + 1e-9
    assert sum(took) / len(took) == pytest.approx(0.020, rel=0.05)


def test_a_decoy_that_already_took_longer_does_not_wait_and_a_stalled_share_counts_at_most_the_ceiling():
    clock = Clock()
    timing = ShareTiming(clock, clock.sleep, random.Random(1))
    clock.now = 10.0
    timing.as_long_as_a_share(began=0.0)
    assert clock.slept == []
    timing.shared(began=0.0)  # a share that took 10 s: the store stalled
    assert timing.average <= INITIAL_SECONDS + 0.1 * CEILING_SECONDS
