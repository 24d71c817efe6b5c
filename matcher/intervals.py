"""GAEN time: 10-minute interval numbers and the UTC days they fall in.

An interval number is ``floor(unix_seconds / 600)``; a UTC day is 144 intervals and starts at a multiple of 144.
All functions take the time as an argument (there is no clock in here) and work on plain ints or numpy arrays.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

INTERVAL_SECONDS = 600
INTERVALS_PER_DAY = 144
SECONDS_PER_DAY = INTERVAL_SECONDS * INTERVALS_PER_DAY
# Matching tests an observation at every interval within this many seconds of the time it was heard: the clock
# skew allowed between two phones (docs/spec.md, "Matching"). Most observations are tested at their own interval
# only; the false-positive sizing (matcher/fprate.py) counts 1 + 2 x 120 / 600 = 1.4 tests an observation.
CLOCK_SKEW_SECONDS = 120


def interval_number(unix_seconds: int | float) -> int:
    """The interval that contains ``unix_seconds``."""
    return int(unix_seconds // INTERVAL_SECONDS)


def interval_numbers(unix_seconds: np.ndarray) -> np.ndarray:
    """Vectorised :func:`interval_number` (int64 in, int64 out)."""
    return np.floor_divide(np.asarray(unix_seconds, dtype=np.int64), INTERVAL_SECONDS)


def interval_start(interval: int) -> int:
    """Unix seconds at which ``interval`` begins."""
    return interval * INTERVAL_SECONDS


def day_start(interval: int) -> int:
    """The first interval of the UTC day that contains ``interval`` (a GAEN-aligned rolling start)."""
    return interval - interval % INTERVALS_PER_DAY


def day_of(interval: int) -> dt.date:
    """The UTC date of ``interval``."""
    return dt.date(1970, 1, 1) + dt.timedelta(days=interval // INTERVALS_PER_DAY)


def days_of(intervals: np.ndarray) -> np.ndarray:
    """Vectorised day index (days since 1970-01-01) of interval numbers."""
    return np.floor_divide(np.asarray(intervals, dtype=np.int64), INTERVALS_PER_DAY)


def first_interval_of(day: dt.date) -> int:
    """The first interval of a UTC date."""
    return (day - dt.date(1970, 1, 1)).days * INTERVALS_PER_DAY
