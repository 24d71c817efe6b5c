"""The per-lookup false-positive rate the publisher sizes batches for, derived from the system's target.

Target: at most 1 false alarm per 10,000 phones per year, for a phone that records 5,000 observations (distinct
(RPI, interval) pairs) a day. docs/spec.md ("False positives") shows the same arithmetic with the default numbers;
a test checks that the numbers there are the ones computed here, and another runs simulated phone-days through
the real matching and scoring code and finds the false alarms this module predicts.

- The alarm rule (docs/spec.md, "Alarm rule") counts a match only when it is **coherent**: another match of the
  same section of the same batch lies at an interval 1 .. W-1 away (W = COHERENCE_INTERVALS). A real exposure of
  15 minutes always spans two neighbouring intervals of one key, so of one section of one batch; two false
  matches must fall in the same batch, and near each other in time, to look like one.
- So a false alarm needs a **coherent false pair**: two tests of two observations of one day, at intervals 1 .. W-1
  apart, both false positives of the same batch. A test is one (observation, interval) lookup; an observation at
  a uniformly random time is tested at ``t = 1 + 2 x skew / 600`` intervals on average (its own, and a neighbour
  only when the observation lies within the clock skew of that neighbour).
- Test pairs of a day: ``Pi = (W - 1) x O x (O - 1) x t^2 / 144`` for O observations spread over the day's 144
  intervals. Each pair is tested against every section of every batch of the retention window; false positives
  are independent across tags (a fresh salt per batch), so a pair is a coherent false pair of section s with
  probability at most ``eps_s^2``.
- Expected coherent false pairs a day: ``mu = Pi x sum(eps_s^2)`` over the sections of the retention window's B
  publishing periods. Give each period the same share: ``sum(eps_s^2) = eps^2`` over its sections, so
  ``mu = Pi x B x eps^2``, and ``P(false alarm on a day) <= mu``. Require ``365 x mu <= target`` and solve:
  ``eps = sqrt(target / (365 x Pi x B))``.
- A publishing run (one period) divides its ``eps^2`` among the sections it cuts, over all its batches (one per
  region), in proportion to their elements: ``eps_s = eps x sqrt(n_s / N)`` for n_s of the run's N elements.
- Venue check-ins take VENUE_SHARE of the target, and proximity the rest: a check-in that overlapped a warned hour
  long enough alerts on one match, so each venue lookup gets ``VENUE_SHARE x target / (365 x 24 x B)`` (a phone
  checked in every hour of the day looks up 24 hours a day in every batch; ``venue_error_rate``).
  That is the division that costs the fewest bits (minimise ``sum(n_s x log2(1 / eps_s))`` under
  ``sum(eps_s^2) = eps^2``): a run of one section spends ``log2(1/eps)`` bits an element, and sections cost half
  the entropy of their shares on top (``section_error_rate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .exposure_config import COHERENCE_INTERVALS
from .intervals import CLOCK_SKEW_SECONDS, INTERVAL_SECONDS, INTERVALS_PER_DAY, SECONDS_PER_DAY
from .model import DEFAULT_RETENTION_DAYS

FALSE_ALARMS_PER_PHONE_YEAR = 1e-4  # 1 false alarm per 10,000 phones per year
# The share of that target that venue check-ins may use; proximity gets the rest. Venue warnings are few hours
# each, so even a tiny rate costs nothing much; 1% moves proximity's rate by half a percent.
VENUE_SHARE = 0.01
CHECKIN_HOURS_PER_DAY = 24  # the most a phone can be checked in: every hour of the day
DAYS_PER_YEAR = 365
OBSERVATIONS_PER_DAY = 5_000
DEFAULT_PUBLISH_INTERVAL_SECONDS = 3600

# Anchors for bandwidth, next to which docs/spec.md and the benchmarks put this service's bytes per case.
CASE_DAYS = (5, 8)  # DP-3T's 5 contagious days; 8 published days (2 before symptom onset to 5 after)
GAEN_BYTES_PER_KEY = 28  # a TemporaryExposureKey in an export file: the 16-byte key, varint start, period, risk
DP3T_BYTES_PER_CASE = 2_880  # DP-3T white paper (unlinkable design): 480 identifiers x 48 bits in a Cuckoo filter


def batches_retained(retention_days: int, publish_interval_seconds: int) -> int:
    """B: publishing periods in the retention window (a partial period counts as one more)."""
    if retention_days < 1 or publish_interval_seconds < 1:
        raise ValueError("the retention window and the publishing interval must be positive")
    return -(-retention_days * SECONDS_PER_DAY // publish_interval_seconds)


def mean_tested_intervals(skew_seconds: int = CLOCK_SKEW_SECONDS) -> float:
    """t: intervals tested for an observation at a uniformly random time.

    The tested intervals are those that overlap ``[time - skew, time + skew]``: a window of ``2 x skew`` seconds
    crosses ``2 x skew / 600`` interval boundaries on average.
    """
    if skew_seconds < 0:
        raise ValueError(f"the clock skew must be at least 0, got {skew_seconds}")
    return 1 + 2 * skew_seconds / INTERVAL_SECONDS


def coherent_test_pairs_per_day(observations: int, coherence_intervals: int, mean_tested: float) -> float:
    """Pi: expected pairs of tests of two observations of one day whose intervals are 1 .. W-1 apart.

    Each of the ``O (O - 1) / 2`` observation pairs has ``t^2`` test pairs on average, and a test pair's two
    intervals are 1 .. W-1 apart, either way round, with probability ``2 (W - 1) / 144``.
    """
    if coherence_intervals < 2:
        raise ValueError(f"coherent matches are at least 1 interval apart: W >= 2, got {coherence_intervals}")
    return (coherence_intervals - 1) * observations * (observations - 1) * mean_tested**2 / INTERVALS_PER_DAY


def rice_bits_per_element(error_rate: float) -> float:
    """Expected bits per element of a Golomb-Rice coded set whose hash range is ``n / error_rate``, at its best P.

    Gaps between n sorted uniform hashes in ``[0, n M)`` are about geometric with mean M; with ``x = (1 - 1/M)^(2^P)``
    a gap's quotient has mean ``x / (1 - x)``, and a code is that, plus 1 stop bit, plus P remainder bits.
    """
    m = math.ceil(1 / error_rate)

    def bits(p: int) -> float:
        x = math.exp(2**p * math.log1p(-1 / m)) if m > 1 else 0.0
        return p + 1 + x / (1 - x)

    guess = max(0, round(math.log2(m * math.log(2))))
    return min(bits(p) for p in range(max(0, guess - 2), guess + 3))


@dataclass(frozen=True)
class Sizing:
    """Every number of the derivation, for docs/spec.md, the benchmark and the publisher's log."""

    observations_per_day: int  # O
    coherence_intervals: int  # W
    mean_tested_intervals: float  # t
    coherent_test_pairs_per_day: float  # Pi
    batches_retained: int  # B
    false_alarms_per_day: float  # proximity's part of the target per phone-day: 0.99 x 1e-4 / 365
    error_rate: float  # eps, per lookup, for each of the period's R batches

    @property
    def lookups_per_observation(self) -> float:
        """L = t x B: every test of an observation is one lookup in the batch of every period, searched in each of
        its sections (phones skip batches whose interval range cannot hold it, so this is an upper bound)."""
        return self.mean_tested_intervals * self.batches_retained

    @property
    def log2_inv_eps(self) -> float:
        return math.log2(1 / self.error_rate)

    @property
    def rice_bits_per_element(self) -> float:
        return rice_bits_per_element(self.error_rate)

    @property
    def bloom_bits_per_element(self) -> float:
        """What an optimal Bloom filter would spend at the same rate: ``1.44 x log2(1/eps)``."""
        return abs(math.log(self.error_rate)) / math.log(2) ** 2


def sizing(
    *,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    publish_interval_seconds: int = DEFAULT_PUBLISH_INTERVAL_SECONDS,
    skew_seconds: int = CLOCK_SKEW_SECONDS,
    coherence_intervals: int = COHERENCE_INTERVALS,
    observations_per_day: int = OBSERVATIONS_PER_DAY,
) -> Sizing:
    mean_tested = mean_tested_intervals(skew_seconds)
    pairs = coherent_test_pairs_per_day(observations_per_day, coherence_intervals, mean_tested)
    retained = batches_retained(retention_days, publish_interval_seconds)
    per_day = (1 - VENUE_SHARE) * FALSE_ALARMS_PER_PHONE_YEAR / DAYS_PER_YEAR
    return Sizing(
        observations_per_day=observations_per_day,
        coherence_intervals=coherence_intervals,
        mean_tested_intervals=mean_tested,
        coherent_test_pairs_per_day=pairs,
        batches_retained=retained,
        false_alarms_per_day=per_day,
        error_rate=math.sqrt(per_day / (pairs * retained)),
    )


def error_rate_for(
    *,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    publish_interval_seconds: int = DEFAULT_PUBLISH_INTERVAL_SECONDS,
) -> float:
    """eps: the per-lookup false-positive rate of a publishing run that cuts one section (section_error_rate
    divides it among several)."""
    return sizing(retention_days=retention_days, publish_interval_seconds=publish_interval_seconds).error_rate


def venue_error_rate(
    *,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    publish_interval_seconds: int = DEFAULT_PUBLISH_INTERVAL_SECONDS,
) -> float:
    """The per-lookup rate of a venue section: one false match of a checked-in hour can alert, and a phone looks up
    at most CHECKIN_HOURS_PER_DAY hours a day in each of the B batches retained."""
    per_day = VENUE_SHARE * FALSE_ALARMS_PER_PHONE_YEAR / DAYS_PER_YEAR
    return per_day / (CHECKIN_HOURS_PER_DAY * batches_retained(retention_days, publish_interval_seconds))


def section_error_rate(run_error_rate: float, section_elements: int, run_elements: int) -> float:
    """A section's share of its run's budget: ``eps_s = eps x sqrt(n_s / N)``, so that the squared rates of the
    run's sections add up to ``eps^2`` (the module docstring says why this division, and no other)."""
    if not 0 < section_elements <= run_elements:
        raise ValueError(f"a section of {section_elements} elements in a run of {run_elements}")
    return run_error_rate * math.sqrt(section_elements / run_elements)


def expected_false_alarms_per_day(
    error_rate: float,
    *,
    batches: int,
    observations_per_day: int = OBSERVATIONS_PER_DAY,
    skew_seconds: int = CLOCK_SKEW_SECONDS,
    coherence_intervals: int = COHERENCE_INTERVALS,
) -> float:
    """mu: expected coherent false pairs a phone-day, with ``batches`` batches of per-lookup rate ``error_rate``
    covering the day (the forward direction of the derivation, which the empirical test checks)."""
    pairs = coherent_test_pairs_per_day(observations_per_day, coherence_intervals, mean_tested_intervals(skew_seconds))
    return pairs * batches * error_rate**2
