"""The simulation: day by day, people meet and phones record; each next morning the diagnosed upload, the service
publishes, and every phone syncs and checks. Everything that touches keys goes through the real service.

Day ``d`` (UTC, from ``start``):

1. Every phone makes the day's key; what it broadcasts is read from the phone library.
2. Encounters happen (people in isolation meet nobody); the truth records contacts with infectious people, and
   infections spread.
3. The scanners' sightings are generated in bulk and stored in the phones' databases.
4. The next morning (``morning_hour`` of day ``d + 1``) `matcher serve` runs with that clock: the people diagnosed
   on day ``d`` upload their keys (a one-time code from IssueCode and the phone's share, or a push by the health
   authority), `matcher publish` cuts the day's batch, and every phone syncs over TLS and checks. The server stops.

The service runs with its product defaults, including the anonymity hold: a morning with fewer than 5 cases
cuts no batch, and those cases are published the next morning (their 24-hour deadline) with that morning's. Cases
still held after the last day's uploads are published on extra mornings after the run (no encounters, no uploads:
the service publishes and the phones sync and check), so that their contacts count as warned a day late, as they
would be, rather than as missed.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from clients.ha.gaen_export import build_export
from clients.ha.push import push_keys
from clients.ha.source_keys import SourceKey
from exposure.v1 import keys_pb2
from matcher.exposure_config import default_config, infectiousness_of
from matcher.intervals import INTERVALS_PER_DAY, SECONDS_PER_DAY
from matcher.model import Infectiousness, ReportType
from matcher.signing import load_signing_key

from .encounters import day_encounters
from .epidemic import PUSHED_BY_AUTHORITY, SHARED_WITH_CODE, Epidemic
from .params import Params
from .phones import DEFAULT_WORKERS, AnyShard, Checked, call_all, gather, start_shards
from .population import Population, build_population
from .radio import scan
from .service import AUTHORITY, REGION, Running, Server, Service, check_store_is_empty
from .truth import Exposures, Truth

# Mornings after the last day that publish what the service still held. One suffices with the default deadline
# (24 hours, one batch a day); a longer one (MATCHER_ANONYMITY_DEADLINE) may need more.
MAX_EXTRA_MORNINGS = 30


class SimulationError(RuntimeError):
    """The run contradicts itself (what was uploaded, published and recorded disagree); one line."""


@dataclass(frozen=True)
class Settings:
    people: int
    days: int
    start: dt.date
    seed: int = 1
    store: str | None = None  # None: a fresh SQLite file in the work folder
    workers: int = DEFAULT_WORKERS  # phone worker processes; 0 runs the phones in this process
    params: Params = field(default_factory=Params)


class Observer(Protocol):
    """Progress: a day begins, phones are done, a day ends."""

    def begin(self, day: int, label: str, phones: int) -> None: ...
    def advance(self, phones: int) -> None: ...
    def end(self, day: int, summary: str) -> None: ...


class Silent:
    def begin(self, day: int, label: str, phones: int) -> None:
        pass

    def advance(self, phones: int) -> None:
        pass

    def end(self, day: int, summary: str) -> None:
        pass


@dataclass
class Batch:
    """A batch the service published, as `matcher publish --json` described it, and the GAEN comparison."""

    day: int  # the simulated day whose diagnoses it carries
    sequence: int
    keys: int
    keys_published: int
    elements: int
    sections: int
    body_bytes: int
    build_seconds: float
    publish_command_seconds: float
    gaen_export_bytes: int  # export.bin + export.sig of the same published keys


@dataclass
class DayStats:
    day: int
    date: str
    after_the_run: bool = False  # an extra morning that only publishes what was held (no encounters, no uploads)
    encounters: int = 0
    sightings: int = 0
    diagnosed: int = 0
    shared_with_code: int = 0
    pushed_by_authority: int = 0
    keys_accepted: int = 0
    cases_uploaded: int = 0  # uploads with at least one key in the infectious period
    cases_published: int = 0  # cases whose keys this morning's batch published (held ones on a later morning)
    keys_held: int = 0  # infectious keys the service held back this morning (too few cases for a batch yet)
    batch: Batch | None = None
    bytes_downloaded: int = 0
    phones_refusing: int = 0
    downloads_interrupted: int = 0


@dataclass
class Outcome:
    """Everything the report is computed from."""

    settings: Settings
    population: Population
    epidemic: Epidemic
    exposures: Exposures  # the truth, per person-day with contact to an infectious reported case
    contacts: np.ndarray  # every contact with an infectious person (truth.Truth.contacts)
    days: list[DayStats]
    # (person, day) of every alert a phone raised -> the morning (simulated day index) it was first seen.
    alerts: dict[tuple[int, int], int]
    sync_seconds: np.ndarray  # (people x days) every phone's sync time, each morning
    check_seconds: np.ndarray  # (people x days) matching and scoring
    phase_seconds: dict[str, float]  # wall time of each part of the run
    held_at_end: list[int]  # people whose keys the service still held after the last day's uploads


class Phases:
    """Wall time per phase of the run, where the time goes. A phase inside another is counted only once: the
    outer one gets what its inner phases did not take."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []  # time taken by inner phases, per open phase

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            took = time.perf_counter() - began
            self.seconds[name] += took - self._inner.pop()
            if self._inner:
                self._inner[-1] += took


def _shard_of(shards: list[AnyShard], person: int) -> tuple[AnyShard, int]:
    for shard in shards:
        if shard.first <= person < shard.first + shard.size:
            return shard, person - shard.first
    raise IndexError(person)


class Simulation:
    def __init__(self, settings: Settings, folder: Path, observer: Observer) -> None:
        self.s = settings
        self.p = settings.params
        self.observer = observer
        self.rng = np.random.default_rng(settings.seed)
        self.population = build_population(settings.people, self.p, self.rng)
        self.epidemic = Epidemic.seeded(settings.people, settings.days, self.p, self.rng)
        self.truth = Truth(self.p.close_range_m)
        self.first_day = (settings.start - dt.date(1970, 1, 1)).days
        store = settings.store or f"sqlite:{folder / 'matcher.db'}"
        self.service = Service(folder, store, self.p.publish_interval_seconds)
        self.phases = Phases()
        self.server: Server | None = None  # tomorrow morning's `matcher serve`
        self.days: list[DayStats] = []
        self.alerts: dict[tuple[int, int], int] = {}
        self.sync_seconds = np.zeros((settings.days, settings.people))  # the run's mornings only
        self.check_seconds = np.zeros((settings.days, settings.people))
        self.config = default_config()
        # Infectious keys uploaded and not yet published, with their owner: the service holds back a batch of too
        # few cases, so what a morning publishes is what awaited it, not only that morning's uploads.
        self.awaiting: list[tuple[int, SourceKey]] = []

    def day_start(self, day: int) -> int:
        return (self.first_day + day) * SECONDS_PER_DAY

    def date(self, day: int) -> dt.date:
        return self.s.start + dt.timedelta(days=day)

    def run(self) -> Outcome:
        with self.phases("setup: certificates, phones"):
            if self.s.store:
                check_store_is_empty(self.s.store)
            self.service.make_certs(contact_intervals_only=self.p.contact_intervals)
            self.signing_key = load_signing_key(self.service.tls_dir / "signing.key")
            shards = start_shards(self.population.tx_power, self.service.tls_dir, self.s.workers)
        try:
            for day in range(self.s.days):
                self.one_day(shards, day)
            held_at_end = sorted({person for person, _ in self.awaiting})
            day = self.s.days
            while self.awaiting:
                if day >= self.s.days + MAX_EXTRA_MORNINGS:
                    raise SimulationError(f"the service still holds {len(self.awaiting)} keys {MAX_EXTRA_MORNINGS} "
                                          "mornings after the run")
                self.extra_morning(shards, day)
                day += 1
        finally:
            if self.server is not None:
                self.server.wait()
            for shard in shards:
                shard.close()
        with self.phases("report: ground truth"):
            exposures = self.truth.exposures(self.epidemic.reported(self.s.days))
        return Outcome(
            settings=self.s,
            population=self.population,
            epidemic=self.epidemic,
            exposures=exposures,
            contacts=self.truth.contacts(),
            days=self.days,
            alerts=self.alerts,
            sync_seconds=self.sync_seconds,
            check_seconds=self.check_seconds,
            phase_seconds=dict(self.phases.seconds),
            held_at_end=held_at_end,
        )

    def one_day(self, shards: list[AnyShard], day: int) -> None:
        stats = DayStats(day=day, date=self.date(day).isoformat())
        self.days.append(stats)
        self.observer.begin(day, f"day {day + 1}/{self.s.days} {stats.date}", self.s.people)
        start = self.day_start(day)
        with self.phases("service: start and stop"):
            if self.server is not None:
                self.server.wait()  # yesterday's
            # Tomorrow morning's server boots while the day is simulated.
            self.server = self.service.start(self.morning_of(day), f"day{day + 1:02d}")
        with self.phases("phones: day keys and broadcasts"):
            parts = call_all(shards, "begin_day", start // 600)
            rpis = np.concatenate([p[0] for p in parts])  # (people, 144, 16)
            aems = np.concatenate([p[1] for p in parts])
        with self.phases("world: encounters, truth, infections"):
            weekday = self.date(day).weekday()
            encounters = day_encounters(self.population, start, weekday, self.epidemic.present(day), self.p, self.rng)
            self.truth.record(encounters, self.epidemic.infectiousness(day), day)
            self.epidemic.transmit(encounters, day, self.rng)
            stats.encounters = len(encounters)
        with self.phases("world: sightings"):
            sightings = scan(encounters, self.population, self.p, self.rng)
            stats.sightings = len(sightings)
            slot = (sightings.time - start) // 600
        with self.phases("phones: recording sightings"):
            for shard in shards:
                lo, hi = np.searchsorted(sightings.observer, [shard.first, shard.first + shard.size])
                part = slice(lo, hi)
                heard = sightings.subject[part]
                shard.submit(
                    "record", sightings.observer[part] - shard.first, rpis[heard, slot[part]],
                    sightings.time[part] // 600, sightings.time[part], sightings.rssi[part], aems[heard, slot[part]],
                )
            recorded = sum(gather(shards))
        if recorded != len(sightings):
            raise SimulationError(f"the phones recorded {recorded} of {len(sightings)} sightings")
        self.morning(shards, day, stats)

    def extra_morning(self, shards: list[AnyShard], day: int) -> None:
        """The morning after ``day``, a day past the run: no encounters and no uploads; the service publishes
        what it held and every phone syncs and checks."""
        stats = DayStats(day=day, date=self.date(day).isoformat(), after_the_run=True)
        self.days.append(stats)
        self.observer.begin(day, f"after the run, {self.date(day + 1)} morning", self.s.people)
        with self.phases("service: start and stop"):
            if self.server is not None:
                self.server.wait()
            self.server = self.service.start(self.morning_of(day), f"after{day + 1:02d}")
        self.morning(shards, day, stats, uploads=False)

    def morning_of(self, day: int) -> int:
        """When the uploads, the publishing and the phones' checks after ``day`` happen (unix seconds)."""
        return self.day_start(day + 1) + self.p.morning_hour * 3600

    def morning(self, shards: list[AnyShard], day: int, stats: DayStats, uploads: bool = True) -> None:
        now = self.morning_of(day)
        assert self.server is not None
        with self.phases("service: start and stop"), self.server.ready() as running:
            if uploads:
                with self.phases("service: uploads (codes, shares, pushes)"):
                    self.awaiting += self.upload(shards, running, day, now, stats)
            with self.phases("service: publish"):
                run, wall = self.service.publish(now)
            self.note_batches(run, wall, day, now, stats)
            with self.phases("phones: sync and check"):
                checked: list[Checked] = call_all(
                    shards, "sync_and_check", running.public, now, progress=self.observer.advance
                )
        self.server.stop()  # it exits while the next day is simulated
        self.collect(shards, checked, day, stats)
        new_alerts = sum(1 for first in self.alerts.values() if first == day + 1)
        self.observer.end(
            day,
            f"{stats.diagnosed} diagnosed, {stats.batch.keys_published if stats.batch else 0} keys published, "
            f"{stats.keys_held} held, {new_alerts} new alerts",
        )

    def upload(
        self, shards: list[AnyShard], running: Running, day: int, now: int, stats: DayStats
    ) -> list[tuple[int, SourceKey]]:
        """The uploads of the people diagnosed on ``day``; returns the keys that will be published, with their
        owner (for GAEN's comparison and the count of cases)."""
        published: list[tuple[int, SourceKey]] = []
        diagnosed = self.epidemic.diagnosed_on(day)
        stats.diagnosed = len(diagnosed)
        for person in diagnosed.tolist():
            how = int(self.epidemic.upload[person])
            if how not in (SHARED_WITH_CODE, PUSHED_BY_AUTHORITY):
                continue
            shard, local = _shard_of(shards, person)
            shard.submit("keys_for_authority", local, now)
            keys = shard.result()
            onset = int(self.epidemic.onset_day[person])
            since = [(start // INTERVALS_PER_DAY - self.first_day) - onset for start, _, _ in keys]
            if how == SHARED_WITH_CODE:
                code = running.issue_code(ReportType.CONFIRMED_TEST, self.date(onset).isoformat())
                shard.submit("share", local, code, now, running.public, self.p.contact_intervals)
                accepted, _, rejected = shard.result()
                stats.shared_with_code += 1
            else:
                protos = [
                    keys_pb2.DiagnosisKey(
                        key_data=tek, rolling_start_interval_number=start, rolling_period=period,
                        report_type=ReportType.CONFIRMED_TEST, days_since_onset_of_symptoms=days,
                    )
                    for (start, tek, period), days in zip(keys, since)
                ]
                summary = push_keys(running.channel, protos, authority=AUTHORITY, region=REGION)
                accepted, rejected = summary.accepted, len(summary.rejected)
                stats.pushed_by_authority += 1
            if rejected:
                raise SimulationError(f"the service refused {rejected} of person {person}'s keys")
            stats.keys_accepted += accepted
            infectious = [
                SourceKey(f"person {person}", tek, start, period, ReportType.CONFIRMED_TEST, days)
                for (start, tek, period), days in zip(keys, since)
                if infectiousness_of(self.config, days) != Infectiousness.NONE
            ]
            stats.cases_uploaded += bool(infectious)
            published += [(person, key) for key in infectious]
        return published

    def note_batches(self, run: dict, wall: float, day: int, now: int, stats: DayStats) -> None:
        """Checks what `matcher publish` did against what awaited publication, and keeps the batch's numbers."""
        batches, held = run["batches"], run["held"]
        if len(batches) > 1:
            raise SimulationError(f"matcher publish cut {len(batches)} batches in one morning; expected at most one")
        stats.keys_held = sum(h["keys"] for h in held)
        published = sum(b["keys_published"] for b in batches)
        # With contact-interval pruning a key whose phone heard no one publishes nothing, and is not counted.
        unexpected = published + stats.keys_held > len(self.awaiting) if self.p.contact_intervals else (
            published + stats.keys_held != len(self.awaiting))
        if unexpected:
            raise SimulationError(
                f"on morning {day + 1}, matcher publish published {published} keys and held {stats.keys_held}; "
                f"{len(self.awaiting)} keys in their infectious period were uploaded and not yet published"
            )
        if published and stats.keys_held:
            # Every simulated key is a CONFIRMED_TEST one, in one section under the default configuration.
            raise SimulationError(f"on morning {day + 1}, matcher publish published part of one section")
        if not batches:
            return
        [batch] = batches
        published_keys = [key for _, key in self.awaiting] if published else []
        stats.cases_published = len({person for person, _ in self.awaiting}) if published else 0
        if published:
            self.awaiting = []
        export_bin, export_sig = build_export(
            published_keys, self.signing_key, region=REGION, start_timestamp=now - SECONDS_PER_DAY, end_timestamp=now
        )
        stats.batch = Batch(
            day=day,
            sequence=batch["sequence"],
            keys=batch["keys"],
            keys_published=batch["keys_published"],
            elements=batch["elements"],
            sections=batch["sections"],
            body_bytes=batch["body_bytes"],
            build_seconds=batch["build_seconds"],
            publish_command_seconds=wall,
            gaen_export_bytes=len(export_bin) + len(export_sig),
        )

    def collect(self, shards: list[AnyShard], checked: list[Checked], day: int, stats: DayStats) -> None:
        for shard, result in zip(shards, checked):
            people = slice(shard.first, shard.first + shard.size)
            if day < self.s.days:  # the phones' times are the run's; an extra morning only adds alerts
                self.sync_seconds[day, people] = result.sync_seconds
                self.check_seconds[day, people] = result.check_seconds
            stats.bytes_downloaded += int(result.bytes_downloaded.sum())
            stats.phones_refusing += int((result.refused > 0).sum())
            stats.downloads_interrupted += int(result.interrupted.sum())
            for index, date in result.alerts:
                key = (shard.first + index, (dt.date.fromisoformat(date) - self.s.start).days)
                self.alerts.setdefault(key, day + 1)


def simulate(settings: Settings, observer: Observer | None = None, keep: Path | None = None) -> Outcome:
    """Runs a simulation in a temporary folder (certificates, store, server logs), or in ``keep`` when given."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return Simulation(settings, keep, observer or Silent()).run()
    folder = Path(tempfile.mkdtemp(prefix="matcher-sim-"))
    try:
        return Simulation(settings, folder, observer or Silent()).run()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
