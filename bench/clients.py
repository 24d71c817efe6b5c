"""Concurrent clients as separate processes, so that 16 or 32 of them are not serialised by one GIL.

Each client process has its own channel or connection. A run gives every client the same task type: the task is
built in its process (connect, then one call whose answer it checks, not timed), all clients start together at
one agreed monotonic time (CLOCK_MONOTONIC is system-wide on Linux), call it again and again for a fixed number
of seconds, and report how many calls, how many units (keys, bytes) and each call's latency.

A task is a class importable by name (spawned processes import it), whose constructor does the set-up and whose
``__call__()`` makes one call and returns the units it moved. The processes are started once per ``Clients``
(``spawn``: nothing of the parent's gRPC state is inherited) and reused for every run.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

READY_TIMEOUT = 60.0  # seconds for every client to connect and make its first call
START_DELAY = 0.2  # seconds between "all ready" and the common start
ROUNDS = 2  # turns that a measurement and its baseline take in Clients.alternate

Task = Callable[..., Callable[[], int]]  # built in the client process with the run's kwargs
Run = tuple[Task, Sequence[dict[str, Any]]]  # a task and one kwargs per client


@dataclass(frozen=True)
class Load:
    """What a run of concurrent clients achieved, all clients together."""

    clients: int
    calls: int
    units: int
    seconds: float  # from the common start to the end of the last call that any client finished
    latencies: np.ndarray  # seconds, one per call

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.seconds

    @property
    def units_per_second(self) -> float:
        return self.units / self.seconds

    def latency_ms(self, percentile: float) -> float:
        return float(np.percentile(self.latencies, percentile) * 1000)


class ClientFailed(RuntimeError):
    """A client process raised; the message carries its traceback."""


def _client(inbox: multiprocessing.Queue, outbox: multiprocessing.Queue) -> None:
    """One client process: for each run, set up the task, say ready, wait for the start, call until the end."""
    from matcher import memory

    # The phones of both sides (gRPC and nginx) receive megabytes a call: with glibc's defaults every one costs
    # fresh pages from the kernel, a page fault each, which would weigh more than the protocol being measured.
    memory.tune()
    while (job := inbox.get()) is not None:
        factory, kwargs, seconds = job
        try:
            task = factory(**kwargs)
            outbox.put(("ready", None))
            start = inbox.get()
            if start is None:  # the run was called off (another client failed)
                return
            time.sleep(max(0.0, start - time.monotonic()))
            calls, units, last, latencies = 0, 0, start, []
            while (began := time.monotonic()) < start + seconds:
                units += task()
                last = time.monotonic()
                latencies.append(last - began)
                calls += 1
            close = getattr(task, "close", None)
            if close is not None:
                close()
            outbox.put(("done", (calls, units, last - start, latencies)))
        except BaseException:
            outbox.put(("error", traceback.format_exc()))


class Clients:
    """``size`` client processes, started once; ``run`` uses the first ``n`` of them."""

    def __init__(self, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._outbox: multiprocessing.Queue = context.Queue()
        self._inboxes: list[multiprocessing.Queue] = [context.Queue() for _ in range(size)]
        self._processes = [
            context.Process(target=_client, args=(inbox, self._outbox), daemon=True, name=f"bench-client-{n}")
            for n, inbox in enumerate(self._inboxes)
        ]
        for process in self._processes:
            process.start()

    def run(self, factory: Task, kwargs: Sequence[dict[str, Any]], seconds: float) -> Load:
        """Runs ``factory(**kwargs[i])`` in client ``i`` for ``seconds``, all clients at once."""
        n = len(kwargs)
        if n > len(self._processes):
            raise ValueError(f"{n} clients wanted, {len(self._processes)} started")
        for inbox, arguments in zip(self._inboxes, kwargs):
            inbox.put((factory, arguments, seconds))
        self._collect("ready", n, READY_TIMEOUT)
        start = time.monotonic() + START_DELAY
        for inbox in self._inboxes[:n]:
            inbox.put(start)
        done = self._collect("done", n, READY_TIMEOUT + seconds * 4)
        return Load(
            clients=n,
            calls=sum(d[0] for d in done),
            units=sum(d[1] for d in done),
            seconds=max(d[2] for d in done),
            latencies=np.concatenate([np.asarray(d[3], dtype=float) for d in done]),
        )

    def alternate(self, runs: dict[str, Run], seconds: float, rounds: int = ROUNDS) -> dict[str, Load]:
        """Each of ``runs`` (name -> task and one kwargs per client) ``rounds`` times, taking turns, keeping each
        one's best round (most calls a second). Taking turns puts a measurement and its baseline side by side in
        time, so that a burst of load from elsewhere on a shared machine hits both, not one."""
        best: dict[str, Load] = {}
        for _ in range(rounds):
            for name, (factory, kwargs) in runs.items():
                load = self.run(factory, kwargs, seconds)
                if name not in best or load.calls_per_second > best[name].calls_per_second:
                    best[name] = load
        return best

    def _collect(self, kind: str, n: int, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        got: list[Any] = []
        while len(got) < n:
            try:
                what, value = self._outbox.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise ClientFailed(f"only {len(got)} of {n} clients were {kind} after {timeout:.0f} s") from None
            if what == "error":
                raise ClientFailed(f"a client failed:\n{value}")
            got.append(value)
        return got

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
