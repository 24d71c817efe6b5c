"""Token buckets: the one rate limiter of the service, for authorities' budgets and for uploads per connection.

A bucket holds up to ``per_period`` tokens and refills at ``per_period / period`` a second; a call spends one. The
buckets are kept in memory by key, least recently used first, and a bucket that has refilled to the brim is
forgotten: it holds nothing a fresh one would not, so memory grows with the callers active in the last period
only, and never past ``max_keys`` (beyond it the least recently used bucket goes; it would start full again, which
only ever loosens a limit, never tightens one).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

DEFAULT_MAX_KEYS = 100_000


class TokenBuckets:
    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self._max_keys = max_keys
        # key -> (tokens, last time, tokens a second, capacity)
        self._buckets: OrderedDict[str, tuple[float, float, float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, per_period: float, period: float, now: float) -> float | None:
        """Spends one token of ``key``'s bucket at time ``now`` (seconds, monotonic): None if there was one,
        otherwise the seconds until there will be (nothing is spent then)."""
        rate = per_period / period
        capacity = max(1.0, float(per_period))
        with self._lock:
            tokens, last, _, _ = self._buckets.pop(key, (capacity, now, rate, capacity))
            tokens = min(capacity, tokens + max(0.0, now - last) * rate)
            wait = None
            if tokens < 1.0 or per_period <= 0:
                wait = (1.0 - tokens) / rate if rate > 0 else period
            else:
                tokens -= 1.0
            self._buckets[key] = (tokens, now, rate, capacity)
            self._forget_idle(now)
            return wait

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: str) -> bool:
        return key in self._buckets

    def _forget_idle(self, now: float) -> None:
        """Drops full buckets from the least recently used end, and the oldest beyond max_keys."""
        while self._buckets:
            key, (tokens, last, rate, capacity) = next(iter(self._buckets.items()))
            if len(self._buckets) <= self._max_keys and tokens + (now - last) * rate < capacity:
                return
            del self._buckets[key]
