"""One thread that ends calls running past a fixed time limit (the download limit, --download-seconds).

A ``threading.Timer`` per download started and ended a thread for every call, which cost 5 to 15% of a phone's
download rate (docs/benchmarks.md). Every limit here has the same length, so limits
fall due in the order they were set: an insertion-ordered dict is the queue, a call that ends removes its entry in
O(1), and the one thread sleeps until the oldest entry is due.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class TimeLimits:
    """``with limits.limit(on_expiry):`` calls ``on_expiry`` (from the limits' own thread) if the block is still
    running ``seconds`` after it began. The thread starts with the first limit, in the process that sets it: a
    server process forked from a parent that made one gets its own."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._due: dict[int, tuple[float, Callable[[], object]]] = {}
        self._keys = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextmanager
    def limit(self, on_expiry: Callable[[], object]) -> Iterator[None]:
        with self._changed:
            key = next(self._keys)
            self._due[key] = (time.monotonic() + self.seconds, on_expiry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="time-limits", daemon=True)
                self._thread.start()
            elif len(self._due) == 1:
                self._changed.notify()  # the thread is waiting for an entry; any other wait ends before this one
        try:
            yield
        finally:
            with self._changed:
                self._due.pop(key, None)

    def pending(self) -> int:
        """How many limits are set and not yet due or ended."""
        with self._changed:
            return len(self._due)

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._due:
                    self._changed.wait()
                    continue
                key, (due, on_expiry) = next(iter(self._due.items()))
                wait = due - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                del self._due[key]
            try:
                on_expiry()  # outside the lock: it may take grpc's locks
            except Exception:
                log.exception("a time limit's action failed")
