"""The publisher: lock, read pending keys, hold sections of too few cases, build, sign, commit, unlock.

Any number of server replicas run it on a timer. Every acknowledged key lands in exactly one batch; this is the
whole protocol, and each part of the code that implements a step names it ("exactly-once step N"):

0. De-duplicate, at submit. An upload is stored in one atomic write with its reply: the same (authority,
   submission id) again gets the first reply back and stores nothing, and a key already held (its fingerprint,
   kept as long as validation would accept the key again) is not stored a second time. Store.submit;
   SqliteStore.submit, the Redis _SUBMIT script; the servicers' side is servicers.store_upload.
1. Lock. One publisher at a time: Store.acquire_publish_lock gives the lock to one owner for a lease that runs
   on real time (store.LEASE_SECONDS by default, Config.publish_lease), and release is compare-and-delete.
   Publisher.publish; SqliteStore.acquire_publish_lock, the Redis _ACQUIRE and _RELEASE scripts.
2. Fence. Each acquisition returns a fencing token that grows and is never issued twice (a persisted counter).
   The publisher carries it to every commit of its run (BatchCommit.fence), so that one whose lease ran out (a
   long pause, a slow build) and whose lock another took over cannot commit: its batch is dropped and its keys
   stay pending for the next run.
3. Cut. Read the pending keys that are due (Store.pending_keys), hold the sections of too few cases
   (matcher/anonymity.py), build and sign a batch numbered last_sequence() + 1 (Publisher._cut). Nothing is
   written: a publisher that dies here leaves every key pending.
4. Commit. Store.commit_batch(BatchCommit) is one atomic write that checks, inside it, that the owner still holds
   the lock with that fence and that the sequence follows the last one, then stores the batch, advances the
   sequence and removes the batch's keys from pending; otherwise LockLost, and nothing changes. A publisher
   killed half way leaves either nothing or the complete batch; two publishers never commit one sequence.
   SqliteStore.commit_batch, the Redis _COMMIT script (which also accepts a commit resent after it happened).
5. Purge. PublishLoop.run_once purges after every run (Store.purge): batches, pending keys, fingerprints,
   codes and submission records past retention. A fingerprint goes only once validation would refuse its key
   anyway, so a key pushed again later can never be published twice. SqliteStore.purge, the Redis _PURGE script.

docs/storage.md describes the layouts that hold all this; tests/contract/ checks every step on both backends.

The anonymity hold (matcher/anonymity.py) decides which sections a run cuts: a section only once its keys belong
to at least K cases, or once its oldest key has waited the deadline. Held keys stay pending and are looked at
again by the next run.
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

from .anonymity import DEFAULT_ANONYMITY_DEADLINE_SECONDS, DEFAULT_ANONYMITY_MIN_CASES, HeldSection, hold_small_sections
from .batches import budget_error_rate, build_batch, elements_of, publishable_sections, sign_header
from .clock import iso
from .config import Config
from .exposure_config import config_in_force
from .fprate import error_rate_for, venue_error_rate
from .intervals import SECONDS_PER_DAY
from .metrics import REGISTRY
from .model import DiagnosisKey, VenueHour
from .signing import SigningKey
from .store import LEASE_SECONDS, BatchCommit, LockLost, PendingKey, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """One committed batch, as a log line or `matcher publish --json` reports it."""

    sequence: int
    region: str
    keys: int
    keys_published: int
    elements: int
    sections: int
    venue_hours: int
    error_rate: float  # its part of the period's false-positive budget (batches.budget_error_rate)
    body_bytes: int
    build_seconds: float


@dataclass(frozen=True)
class Held:
    """The keys of one region that a run left pending: its sections of fewer than K cases whose deadline had not
    passed. ``until`` is the latest of their deadlines: the first run at or after it publishes all of them, with or
    without K cases (sooner for each section that reaches K)."""

    region: str
    keys: int
    sections: int
    until: int


@dataclass(frozen=True)
class PublishRun:
    """What one publishing run did: the batches it committed and, per region, what it held back."""

    batches: list[Published]
    held: list[Held]


def keys_of(items: list[PendingKey]) -> list[DiagnosisKey]:
    """The diagnosis keys among pending items (the others are warned venue hours)."""
    return [item.key for item in items if isinstance(item.key, DiagnosisKey)]


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
        anonymity_min_cases: int = DEFAULT_ANONYMITY_MIN_CASES,
        anonymity_deadline: int = DEFAULT_ANONYMITY_DEADLINE_SECONDS,
    ) -> None:
        self.store = store
        self.signing_key = signing_key
        self.retention_days = retention_days
        self.publish_interval = publish_interval
        self.max_keys_per_batch = max_keys_per_batch
        self.anonymity_min_cases = anonymity_min_cases
        self.anonymity_deadline = anonymity_deadline
        # Unique per process and instance: the lock's compare-and-delete must never release someone else's lease.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds

    @classmethod
    def from_config(cls, config: Config, store: Store, signing_key: SigningKey) -> Publisher:
        """The publisher the settings describe: one wiring for `matcher serve`'s timer and `matcher publish`."""
        return cls(
            store,
            signing_key,
            retention_days=config.retention_days,
            publish_interval=config.publish_interval,
            max_keys_per_batch=config.max_keys_per_batch,
            lease_seconds=config.publish_lease,
            anonymity_min_cases=config.anonymity_min_cases,
            anonymity_deadline=config.anonymity_deadline_seconds,
        )

    def publish(self, now: int) -> PublishRun:
        """Cuts every batch that is due at ``now``; returns them and what was held (nothing if another replica
        holds the lock)."""
        fence = self.store.acquire_publish_lock(self.owner, self.lease_seconds)  # steps 1 and 2: lock, fence
        if fence is None:
            log.info("publish skipped: another publisher holds the lock")
            return PublishRun([], [])
        try:
            return self._publish_locked(now, fence)
        finally:
            self.store.release_publish_lock(self.owner)

    def _publish_locked(self, now: int, fence: int) -> PublishRun:
        config = config_in_force(self.store.get_exposure_config())  # read fresh: an authority may have changed it
        published: list[Published] = []
        held: dict[str, list[HeldSection]] = defaultdict(list)
        left: set[str] = set()  # keys this run looked at and left pending
        while True:
            # Keys a run leaves pending (held, or publishing nothing beside held ones) come back in every read,
            # oldest first. So each read asks for that many more keys than a batch takes and skips them: it always
            # reaches up to a batch's worth of keys not looked at yet. Held keys that fill a whole read neither
            # make the run loop on them nor hide the newer keys behind them; and since every read looks at new
            # keys, the loop ends once a read comes back short. A key left pending stays so for the rest of the
            # run (it is not counted again with the keys of later reads); the next run looks at it afresh.
            limit = self.max_keys_per_batch + len(left)
            pending = self.store.pending_keys(now=now, limit=limit)
            fresh = [item for item in pending if item.id not in left][: self.max_keys_per_batch]
            if not fresh:
                break
            by_region: dict[str, list[PendingKey]] = defaultdict(list)
            for item in fresh:
                by_region[item.region].append(item)
            cuts = {
                region: hold_small_sections(
                    items, config, now=now, min_cases=self.anonymity_min_cases, deadline=self.anonymity_deadline
                )
                for region, items in by_region.items()
            }
            # The period's share of the false-alarm budget, divided among every section the run cuts in proportion
            # to its elements (docs/spec.md, "False positives"); held keys take no share.
            error_rate = error_rate_for(
                retention_days=self.retention_days, publish_interval_seconds=self.publish_interval
            )
            run_elements = sum(
                elements_of(keys)
                for cut in cuts.values()
                for keys in publishable_sections(keys_of(cut.released), config).values()
            )
            for region, cut in sorted(cuts.items()):
                held[region] += cut.held
                if cut.held and not cut.sections:
                    # Everything here that would publish an element is held: no batch. An empty one would tell
                    # phones nothing and spend a sequence number; the keys that publish nothing wait with the
                    # held ones for the region's next batch.
                    left.update(item.id for item in cut.released + cut.held_keys)
                    continue
                left.update(item.id for item in cut.held_keys)
                published.append(self._cut(cut.released, region, now, fence, config, error_rate, run_elements))
            if len(pending) < limit:
                break
        summary = [
            Held(
                region,
                sum(len(s.keys) for s in sections),
                len({s.section for s in sections}),
                max(s.until for s in sections),
            )
            for region, sections in sorted(held.items())
            if sections
        ]
        REGISTRY.set("matcher_keys_held", sum(h.keys for h in summary))
        for h in summary:
            log.info(
                "keys held: region=%s keys=%d sections=%d (fewer than %d cases) until %s at the latest",
                h.region,
                h.keys,
                h.sections,
                self.anonymity_min_cases,
                iso(h.until),
            )
        return PublishRun(published, summary)

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
        # Steps 3 and 4 for one region's keys: cut (build and sign, nothing written), then commit under the fence.
        began = time.perf_counter()
        sequence = self.store.last_sequence() + 1
        log.debug("building batch %d: region=%s keys=%d", sequence, region, len(items))
        built = build_batch(
            keys_of(items),
            sequence=sequence,
            published_at=now,
            region=region,
            config=config,
            signing_key=self.signing_key,
            error_rate=error_rate,
            run_elements=run_elements or None,
            venue_hours=[item.key for item in items if isinstance(item.key, VenueHour)],
            venue_error_rate=venue_error_rate(
                retention_days=self.retention_days, publish_interval_seconds=self.publish_interval
            ),
        )
        signed = sign_header(built.header, self.signing_key)
        self.store.commit_batch(
            BatchCommit(
                owner=self.owner,
                fence=fence,
                sequence=sequence,
                published_at=now,
                signed_header=signed.SerializeToString(),
                body=built.body,
                key_ids=[item.id for item in items],
                now=now,
                retention_seconds=self.retention_days * SECONDS_PER_DAY,
            )
        )
        result = Published(
            sequence=sequence,
            region=region,
            keys=len(keys_of(items)),
            venue_hours=len(items) - len(keys_of(items)),
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
            sequence,
            region,
            result.keys,
            result.keys_published,
            result.elements,
            result.sections,
            result.body_bytes,
            result.build_seconds,
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
        finally:  # step 5, purge: retention does not wait for publishing to work again, expired data goes anyway
            counts = self.store.purge(now=now, retention_seconds=self.retention_seconds)
        for kind in ("keys", "batches", "codes", "submissions"):
            if getattr(counts, kind):
                REGISTRY.inc("matcher_records_purged_total", getattr(counts, kind), kind=kind)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("publish run failed; retrying in %ss", self.interval)
