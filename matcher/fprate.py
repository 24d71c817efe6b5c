"""The per-lookup false-positive rate the publisher sizes filters for, derived from the system's target.

Target: at most 1 false alarm per 10,000 phones per year, for a phone that records 5,000 observations (distinct
(RPI, interval) pairs) a day, under the exposure configuration in force. docs/spec.md ("False positives") shows
the same arithmetic with the default numbers; a test checks that the numbers there are the ones computed here.

- Each observation is looked up ``L = (2t + 1) x B x C`` times: at 2t+1 intervals, in each of the B publishing
  periods of the retention window, in each of the C filters a period publishes (a phone skips batches whose range
  cannot hold the observation, so this is an upper bound).
- C is at most RISK_CLASSES (every class in one batch). The publisher sizes each publishing run for the filters it
  actually publishes: a day's expected false matches are a sum over periods, and a period that spends at most 1/B
  of the daily budget, however it divides it among its filters, keeps the sum within the target. A run with few
  filters therefore gets looser, smaller filters than the worst case.
- Lookups are independent (a fresh salt per batch), so a day's false matches are Poisson with mean
  ``lambda = O x L x p``, where O is observations a day and p the per-lookup false-positive rate.
- An alarm needs at least ``m = matches_needed_for_alert(config)`` matched observations on one day.
- Require ``days_per_year x P(Poisson(lambda) >= m) <= target``, solve for lambda exactly (numerically), and
  ``p = lambda / (O x L)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from exposure.v1 import config_pb2

from . import batches
from .exposure_config import matches_needed_for_alert
from .filters import DEFAULT_TOLERANCE, FilterParams
from .intervals import INTERVALS_PER_DAY, SECONDS_PER_DAY
from .model import DEFAULT_RETENTION_DAYS

FALSE_ALARMS_PER_PHONE_YEAR = 1e-4  # 1 false alarm per 10,000 phones per year
DAYS_PER_YEAR = 365
OBSERVATIONS_PER_DAY = 5_000
DEFAULT_PUBLISH_INTERVAL_SECONDS = 3600
# C: the most filters a batch can carry, 3 report types x 2 infectiousness levels x 14 TX power classes (-40..20 dBm
# in 5 dB steps, and unknown). A phone tests an observation against every filter of a batch.
RISK_CLASSES = len(batches.RISK_CLASSES)
# The loosest filters ever published, whatever the configuration: one that needs many matches a day to alert
# (or cannot alert at all) would allow more, but a phone's list of matched observations should stay meaningful.
MAX_ERROR_RATE = 1e-3
# The example case for bandwidth: 8 published days of keys, 144 intervals each.
EXAMPLE_CASE_ELEMENTS = 8 * INTERVALS_PER_DAY
GAEN_BYTES_PER_KEY = 28  # a TemporaryExposureKey in an export file: the 16-byte key, varint start, period, risk


def batches_retained(retention_days: int, publish_interval_seconds: int) -> int:
    """B: batches published during the retention window (a partial period counts as one more batch)."""
    if retention_days < 1 or publish_interval_seconds < 1:
        raise ValueError("the retention window and the publishing interval must be positive")
    return -(-retention_days * SECONDS_PER_DAY // publish_interval_seconds)


def lookups_per_observation(
    retention_days: int, publish_interval_seconds: int, tolerance: int, filters_per_period: int = RISK_CLASSES
) -> int:
    """L = (2t + 1) x B x C."""
    if tolerance < 0:
        raise ValueError(f"the tolerance must be at least 0, got {tolerance}")
    if filters_per_period < 1:
        raise ValueError(f"a publishing period has at least one filter, got {filters_per_period}")
    return (2 * tolerance + 1) * batches_retained(retention_days, publish_interval_seconds) * filters_per_period


def poisson_at_least(mean: float, m: int) -> float:
    """P(X >= m) for X ~ Poisson(mean), accurate also where it is tiny (no 1 - (1 - x) cancellation)."""
    if m <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    log_term = -mean + m * math.log(mean) - math.lgamma(m + 1)
    if mean < m:  # sum the upper tail upwards: terms shrink by mean/(j+1) < 1
        term, total, j = math.exp(log_term), 0.0, m
        while term > total * 1e-17:
            total += term
            j += 1
            term *= mean / j
        return min(total, 1.0)
    below = sum(math.exp(-mean + j * math.log(mean) - math.lgamma(j + 1)) for j in range(m))
    return max(0.0, 1.0 - below)


def _solve_mean(limit_per_day: float, m: int, largest: float) -> float:
    """The largest Poisson mean up to ``largest`` with P(X >= m) <= limit_per_day, by bisection in log space."""
    if poisson_at_least(largest, m) <= limit_per_day:
        return largest
    low, high = 1e-300, largest
    while high / low - 1 > 1e-15:
        middle = math.sqrt(low * high)
        if poisson_at_least(middle, m) <= limit_per_day:
            low = middle
        else:
            high = middle
    return low


@dataclass(frozen=True)
class Sizing:
    """Every number of the derivation, for docs/spec.md, the benchmark and the publisher's log."""

    matches_needed: int  # m
    observations_per_day: int  # O
    batches_retained: int  # B
    filters_per_period: int  # C
    lookups_per_observation: int  # L
    false_matches_per_day: float  # lambda
    error_rate: float  # p, the per-lookup rate filters are sized for

    @property
    def num_slices(self) -> int:
        return FilterParams.for_capacity(1, self.error_rate).num_slices

    @property
    def bloom_bound_bits_per_element(self) -> float:
        """``|ln eps| / (ln 2)^2 = 1.44 x log2(1/eps)``: the optimal Bloom filter's size."""
        return abs(math.log(self.error_rate)) / math.log(2) ** 2

    def bytes_for(self, elements: int) -> int:
        """Size of one filter image (tofile header included) holding exactly ``elements`` elements."""
        return FilterParams.for_capacity(elements, self.error_rate).image_bytes


def sizing(
    config: config_pb2.ExposureConfig,
    *,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    publish_interval_seconds: int = DEFAULT_PUBLISH_INTERVAL_SECONDS,
    tolerance: int = DEFAULT_TOLERANCE,
    filters_per_period: int = RISK_CLASSES,
) -> Sizing:
    m = matches_needed_for_alert(config)
    lookups = lookups_per_observation(retention_days, publish_interval_seconds, tolerance, filters_per_period)
    budget = OBSERVATIONS_PER_DAY * lookups
    mean = _solve_mean(FALSE_ALARMS_PER_PHONE_YEAR / DAYS_PER_YEAR, m, largest=budget * MAX_ERROR_RATE)
    error_rate = mean / budget
    return Sizing(
        matches_needed=m,
        observations_per_day=OBSERVATIONS_PER_DAY,
        batches_retained=batches_retained(retention_days, publish_interval_seconds),
        filters_per_period=filters_per_period,
        lookups_per_observation=lookups,
        false_matches_per_day=error_rate * budget,
        error_rate=error_rate,
    )


def error_rate_for(
    config: config_pb2.ExposureConfig,
    *,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    publish_interval_seconds: int = DEFAULT_PUBLISH_INTERVAL_SECONDS,
    tolerance: int = DEFAULT_TOLERANCE,
    filters_per_period: int = RISK_CLASSES,
) -> float:
    """The per-lookup false-positive rate the filters of one publishing run are sized for under this
    configuration, when the run publishes ``filters_per_period`` filters (default: the worst case)."""
    return sizing(
        config,
        retention_days=retention_days,
        publish_interval_seconds=publish_interval_seconds,
        tolerance=tolerance,
        filters_per_period=filters_per_period,
    ).error_rate
