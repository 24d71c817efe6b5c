"""A decoy share's answer takes as long as a share's (docs/privacy.md, "Decoy shares").

A decoy does a share's reads but not its write (a transaction, on SQLite an fsync): answered at once it would come
back a few milliseconds sooner than a share, which a patient observer of many uploads could learn to tell. So the
server keeps a moving average of how long accepted shares took, and a decoy's answer waits until it has taken a
time drawn around that average, as the Corona-Warn-App's server delays its fake uploads.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

INITIAL_SECONDS = 0.005  # before any share was timed: a share's write on a local SSD
WEIGHT = 0.1  # of each new share in the average: about the last ten shares count
SPREAD = 0.5  # a decoy takes the average times a factor drawn uniformly from 1 - SPREAD .. 1 + SPREAD
CEILING_SECONDS = 1.0  # a stalled store must not make decoys hold worker threads for long


class ShareTiming:
    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.average = INITIAL_SECONDS
        self._clock, self._sleep = clock, sleep
        self._rng = rng or random.Random()

    def shared(self, began: float) -> None:
        """An accepted share that began at ``began`` (of the clock) has been answered."""
        took = min(self._clock() - began, CEILING_SECONDS)
        self.average += WEIGHT * (took - self.average)  # races between threads lose an update, nothing worse

    def as_long_as_a_share(self, began: float) -> None:
        """Waits until a decoy that began at ``began`` has taken about as long as a share takes."""
        target = self.average * self._rng.uniform(1 - SPREAD, 1 + SPREAD)
        left = target - (self._clock() - began)
        if left > 0:
            self._sleep(left)
