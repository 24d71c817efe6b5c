"""The publisher: lock, read pending keys, build filters, sign, commit, unlock.

Any number of server replicas run it on a timer; the store's lock lets exactly one cut at a time, and its fencing
token makes a publisher whose lease ran out (a long pause, a slow build) unable to commit: its batch is dropped
and the keys stay pending for the next run. The commit is atomic, so a publisher killed half way leaves either
nothing or a complete batch, and every acknowledged key lands in exactly one batch.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from exposure.v1 import config_pb2

from .batches import budget_error_rate, build_batch, elements_of, publishable_sections, sign_header
from .exposure_config import config_in_force
from .fprate import error_rate_for
from .metrics import REGISTRY
from .signing import SigningKey
from .store import LockLost, PendingKey, Store

log = logging.getLogger(__name__)

LEASE_SECONDS = 300.0


@dataclass(frozen=True)
class Published:
    """One committed batch, as a log line or `matcher publish --json` reports it."""

    sequence: int
    region: str
    keys: int
    keys_published: int
    elements: int
    sections: int
    error_rate: float  # its part of the period's false-positive budget (batches.budget_error_rate)
    body_bytes: int
    build_seconds: float


class Publisher:
    def __init__(
        self,
        store: Store,
        signing_key: SigningKey,
        *,
        retention_days: int,
        publish_interval: int,
        max_keys_per_batch: int,
        owner: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.signing_key = signing_key
        self.retention_days = retention_days
        self.publish_interval = publish_interval
        self.max_keys_per_batch = max_keys_per_batch
        # Unique per process and instance: the lock's compare-and-delete must never release someone else's lease.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds

    def publish(self, now: int) -> list[Published]:
        """Cuts every batch that is due at ``now``; returns them (empty if another replica holds the lock)."""
        fence = self.store.acquire_publish_lock(self.owner, self.lease_seconds)
        if fence is None:
            log.info("publish skipped: another publisher holds the lock")
            return []
        try:
            return self._publish_locked(now, fence)
        finally:
            self.store.release_publish_lock(self.owner)

    def _publish_locked(self, now: int, fence: int) -> list[Published]:
        config = config_in_force(self.store.get_exposure_config())  # read fresh: an authority may have changed it
        published: list[Published] = []
        while True:
            pending = self.store.pending_keys(now=now, limit=self.max_keys_per_batch)
            if not pending:
                return published
            by_region: dict[str, list[PendingKey]] = defaultdict(list)
            for item in pending:
                by_region[item.region].append(item)
            # The period's share of the false-alarm budget, divided among every section the run cuts in proportion
            # to its elements (docs/spec.md, "False positives").
            error_rate = error_rate_for(retention_days=self.retention_days, publish_interval_seconds=self.publish_interval)
            run_elements = sum(
                elements_of(keys)
                for items in by_region.values()
                for keys in publishable_sections([item.key for item in items], config).values()
            )
            for region, items in sorted(by_region.items()):
                published.append(self._cut(items, region, now, fence, config, error_rate, run_elements))
            if len(pending) < self.max_keys_per_batch:
                return published

    def _cut(
        self,
        items: list[PendingKey],
        region: str,
        now: int,
        fence: int,
        config: config_pb2.ExposureConfig,
        error_rate: float,
        run_elements: int,
    ) -> Published:
        began = time.perf_counter()
        sequence = self.store.last_sequence() + 1
        built = build_batch(
            [item.key for item in items],
            sequence=sequence,
            published_at=now,
            region=region,
            config=config,
            signing_key=self.signing_key,
            error_rate=error_rate,
            run_elements=run_elements or None,
        )
        signed = sign_header(built.header, self.signing_key)
        self.store.commit_batch(
            owner=self.owner,
            fence=fence,
            sequence=sequence,
            published_at=now,
            signed_header=signed.SerializeToString(),
            body=built.body,
            key_ids=[item.id for item in items],
            now=now,
            retention_seconds=self.retention_days * 86400,
        )
        result = Published(
            sequence=sequence,
            region=region,
            keys=len(items),
            keys_published=built.keys_published,
            elements=built.elements,
            sections=len(built.header.sections),
            error_rate=budget_error_rate(built.header),
            body_bytes=len(built.body),
            build_seconds=round(time.perf_counter() - began, 3),
        )
        REGISTRY.inc("matcher_batches_published_total")
        REGISTRY.inc("matcher_elements_published_total", built.elements)
        REGISTRY.inc("matcher_batch_bytes_published_total", len(built.body))
        log.info(
            "batch %d published: region=%s keys=%d published_keys=%d elements=%d sections=%d bytes=%d in %.2fs",
            sequence, region, result.keys, result.keys_published, result.elements, result.sections,
            result.body_bytes, result.build_seconds,
        )
        return result


class PublishLoop:
    """Runs the publisher and the retention purge every ``interval`` seconds until stopped."""

    def __init__(
        self, publisher: Publisher, store: Store, clock: Callable[[], int], interval: float, retention_seconds: int
    ) -> None:
        self.publisher = publisher
        self.store = store
        self.clock = clock
        self.interval = interval
        self.retention_seconds = retention_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def run_once(self) -> None:
        now = self.clock()
        try:
            self.publisher.publish(now)
        except LockLost:
            log.warning("publish abandoned: the lock lease expired before the commit; the keys stay pending")
        counts = self.store.purge(now=now, retention_seconds=self.retention_seconds)
        for kind in ("keys", "batches", "codes", "submissions"):
            if getattr(counts, kind):
                REGISTRY.inc("matcher_records_purged_total", getattr(counts, kind), kind=kind)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - a failed run is logged and retried next interval
                log.exception("publish run failed; retrying in %ss", self.interval)
