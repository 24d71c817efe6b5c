"""The simulation: day by day, people meet and phones record; each next morning the diagnosed upload, the service
publishes, and every phone syncs and checks. Everything that touches keys goes through the real service.

Day ``d`` (UTC, from ``start``):

1. Every phone makes the day's key; what it broadcasts is read from the phone library.
2. Encounters happen (people in isolation meet nobody); the truth records contacts with infectious people, and
   infections spread.
3. The scanners' sightings are generated in bulk and stored in the phones' databases. People visit shops,
   restaurants and offices (every venue made as `matcher-ha venue create` makes it); the truth records the air
   shared with infectious people, airborne infections spread, and the visitors with the habit check in (their
   phones record the visit from the QR code's text).
4. The next morning (``morning_hour`` of day ``d + 1``) `matcher serve` runs with that clock: the people diagnosed
   on day ``d`` upload their keys (a one-time code from IssueCode and the phone's share, or a push by the health
   authority), `matcher publish` cuts the day's batch, and every phone syncs over TLS and checks. People whose
   phone raised a new F1 alert are designated F1 by the authority; a share of them (``contact_share``) upload as a
   case's contact: a RECURSIVE code for the day their alert names, and the phone shares its keys from that day on,
   to be published the next morning. They isolate from that morning. A reported case also shows the authority
   their phone's check-ins; each visit on an infectious day is warned with the owner's trace file
   (SubmitVenueWarning), published in that morning's batch, and phones match their check-ins when they check.
   The server stops.

The service runs with its product defaults, including the anonymity hold: a morning with fewer than 5 cases
cuts no batch, and those cases are published the next morning (their 24-hour deadline) with that morning's. Cases
still held after the last day's uploads are published on extra mornings after the run (no encounters, no uploads:
the service publishes and the phones sync and check), so that their contacts count as warned a day late, as they
would be, rather than as missed.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from clients.ha.gaen_export import build_export
from clients.ha.push import push_keys
from clients.ha.source_keys import SourceKey
from exposure.v1 import batch_pb2, keys_pb2
from matcher.exposure_config import default_config, infectiousness_of
from matcher.intervals import INTERVALS_PER_DAY, SECONDS_PER_DAY
from matcher.model import Infectiousness, ReportType
from matcher.signing import load_signing_key
from matcher.venues import HOUR_SECONDS, parse_payload

from .encounters import day_encounters
from .epidemic import PUSHED_BY_AUTHORITY, SHARED_WITH_CODE, Epidemic
from .params import Params
from .phones import DEFAULT_WORKERS, AnyShard, Checked, call_all, gather, start_shards
from .population import Population, build_population
from .radio import scan
from .service import AUTHORITY, REGION, Running, Server, Service, check_store_is_empty
from .truth import Exposures, RoomExposures, Truth, exposure_starts, f2_minutes, minutes_of
from .venues import build_venues, check_in_habit, day_visits, shared_air

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
    # The same split by tier, from the signed header's sections: cases' keys (F1) and their contacts' (RECURSIVE,
    # F2), which the publisher never puts in one section. Keys are the simulation's own count of what it published.
    contact_keys_published: int = 0
    case_elements: int = 0  # distinct element hashes of the cases' sections
    contact_elements: int = 0
    contact_bytes: int = 0  # bytes of the RECURSIVE sections; the cases' are body_bytes - contact_bytes
    # Bytes the cases' sections pay for sharing the batch's false-positive budget with the RECURSIVE section:
    # eps_s = eps x sqrt(n_s / N) (matcher/fprate.py), so about n_case x 0.5 log2(N / n_case) bits. An estimate.
    case_bytes_for_sharing_budget: float = 0.0
    gaen_export_bytes_cases: int = 0  # a GAEN file of the cases' keys alone (0: no case key published)
    venue_hours: int = 0  # warned venue hours it published (never held)
    venue_bytes: int = 0  # bytes of its venue section

    @property
    def case_keys_published(self) -> int:
        return self.keys_published - self.contact_keys_published

    @property
    def case_bytes(self) -> int:
        return self.body_bytes - self.contact_bytes - self.venue_bytes


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
    # A case's keys that the service already held as a contact's (RECURSIVE): stored once, published as F2 only.
    case_keys_shared_as_contact: int = 0
    designated_f1: int = 0  # people with a new F1 alert this morning, not cases: the authority designates them
    contacts_shared: int = 0  # of those, who uploaded as a case's contact (the rest declined)
    contact_keys_accepted: int = 0
    contacts_published: int = 0  # contacts whose keys this morning's batch published
    visits: int = 0  # venue visits of the day
    checkins: int = 0  # of those, recorded by the visitor's phone
    room_infections: int = 0  # infections of the day in venues' shared air (the others are from encounters)
    venue_warnings: int = 0  # this morning: warnings the authority sent, one per check-in a case showed
    venue_hours_warned: int = 0  # the hours the service stored for them
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
    # (person, day) of every day a phone alerted for at F1 (near a case) -> the morning (simulated day index) it
    # was first seen so.
    alerts: dict[tuple[int, int], int]
    sync_seconds: np.ndarray  # (people x days) every phone's sync time, each morning
    check_seconds: np.ndarray  # (people x days) matching and scoring
    phase_seconds: dict[str, float]  # wall time of each part of the run
    held_at_end: list[int]  # people whose keys the service still held after the last day's uploads
    # (person, day) of every day a phone alerted for at F2 (near a case's contact) -> the morning first seen so. A
    # day may be in both: an F2 alert that a later batch of cases' keys turned into an F1 one (F1 wins the day).
    f2_alerts: dict[tuple[int, int], int] = field(default_factory=dict)
    # The F2 truth: per person-day, minutes with truly F1-exposed contacts who shared, from their exposure on and on
    # days whose key they uploaded (truth.f2_minutes) ...
    f2_exposures: Exposures = field(default_factory=Exposures.empty)
    # ... and minutes with any contact who shared, on days whose key they uploaded: what phones could match.
    f2_contact_minutes: Exposures = field(default_factory=Exposures.empty)
    # Each contact who shared: person -> (morning, exposure day index, day indices of the keys sent).
    contact_shares: dict[int, tuple[int, int, list[int]]] = field(default_factory=dict)
    # Truly (F1-)exposed person-days that only keys shared as a contact's could warn: their case had shared those
    # days as a contact before its diagnosis, and the service keeps a key's first upload.
    f1_days_only_contact_keys: set[tuple[int, int]] = field(default_factory=set)
    # Venues: the truth of shared air (truth.Truth.room_exposures) ...
    room_exposures: RoomExposures = field(default_factory=RoomExposures.empty)
    # ... (person, day of the visit) of every check-in that alerted -> the morning first seen ...
    venue_alerts: dict[tuple[int, int], int] = field(default_factory=dict)
    # ... every recorded check-in, rows (person, venue, entry, exit, day), and the (venue, hour) warned.
    checkins: np.ndarray = field(default_factory=lambda: np.empty((0, 5), dtype=np.int64))
    warned_hours: set[tuple[int, int]] = field(default_factory=set)
    venue_kinds: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int8))


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
        # Contacts of cases (F1 -> F2). Whether a person would share as a contact if designated is drawn up front
        # from a generator of its own, so that the world's stream is untouched: with contact_share 0 a run is the
        # run without contacts, seed for seed.
        self.would_share = np.random.default_rng((settings.seed, 19)).random(settings.people) < self.p.contact_share
        self.designated = np.zeros(settings.people, dtype=bool)
        self.contact_days = np.zeros((settings.people, settings.days), dtype=bool)  # keys uploaded as a contact's
        self.contact_shares: dict[int, tuple[int, int, list[int]]] = {}
        self.f2_alerts: dict[tuple[int, int], int] = {}
        self.uploaded: set[tuple[bytes, int]] = set()  # (key data, start) of every key uploaded: the server's dedup
        # Venues. The check-in habit has a generator of its own, like would_share.
        self.venues = build_venues(self.population, self.p)
        self.habit = check_in_habit(settings.people, self.p, np.random.default_rng((settings.seed, 20)))
        self.venue_of_id: dict[bytes, tuple[int, Path]] = {}  # venue_id -> (venue, the owner's trace file)
        self.checkins: list[np.ndarray] = []  # rows: person, venue, entry, exit, day
        self.warned_hours: set[tuple[int, int]] = set()
        self.venue_alerts: dict[tuple[int, int], int] = {}

    def day_start(self, day: int) -> int:
        return (self.first_day + day) * SECONDS_PER_DAY

    def date(self, day: int) -> dt.date:
        return self.s.start + dt.timedelta(days=day)

    def run(self) -> Outcome:
        with self.phases("setup: certificates, phones"):
            if self.s.store:
                check_store_is_empty(self.s.store)
            self.service.make_certs(contact_intervals_only=self.p.contact_intervals)
            self.signing_key = load_signing_key(self.service.tls_dir / "server" / "signing.key")
            shards = start_shards(self.population.tx_power, self.service.tls_dir / "phone", self.s.workers)
        try:
            with self.phases("setup: venues (QR codes, trace files)"):
                made = self.service.make_venues([self.venues.name(v) for v in range(len(self.venues))])
                self.venue_of_id = {
                    parse_payload(payload).venue_id: (v, trace) for v, (payload, trace) in enumerate(made)
                }
                call_all(shards, "scan_venues", [payload for payload, _ in made])
            for day in range(self.s.days):
                self.one_day(shards, day)
            held_at_end = sorted({person for person, _ in self.awaiting})
            day = self.s.days
            while self.awaiting:
                if day >= self.s.days + MAX_EXTRA_MORNINGS:
                    raise SimulationError(
                        f"the service still holds {len(self.awaiting)} keys {MAX_EXTRA_MORNINGS} mornings after the run"
                    )
                self.extra_morning(shards, day)
                day += 1
        finally:
            if self.server is not None:
                self.server.wait()
            for shard in shards:
                shard.close()
        with self.phases("report: ground truth"):
            reported = self.epidemic.reported(self.s.days)
            exposures = self.truth.exposures(reported)
            near = self.truth.near_contacts()
            starts = exposure_starts(self.truth.contacts(), reported, exposures.exposed(self.p.exposure_minutes))
            f2_exposures = f2_minutes(near, self.contact_days, starts)
            f2_contact_minutes = f2_minutes(near, self.contact_days)
            # Truly exposed days that only keys a case had shared as a contact, before its diagnosis, could warn:
            # the service keeps the first upload of a key, so those days were published as F2 keys only.
            contacts = self.truth.contacts()
            as_case = reported[contacts[:, 1]] & ~self.contact_days[contacts[:, 1], contacts[:, 2]]
            only_contact_keys = exposures.exposed(self.p.exposure_minutes) - minutes_of(contacts[as_case]).exposed(
                self.p.exposure_minutes
            )
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
            f2_alerts=self.f2_alerts,
            f2_exposures=f2_exposures,
            f2_contact_minutes=f2_contact_minutes,
            contact_shares=self.contact_shares,
            f1_days_only_contact_keys=only_contact_keys,
            room_exposures=self.truth.room_exposures(reported),
            venue_alerts=self.venue_alerts,
            checkins=np.concatenate(self.checkins) if self.checkins else np.empty((0, 5), dtype=np.int64),
            warned_hours=self.warned_hours,
            venue_kinds=self.venues.kind,
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
            present, infectious = self.epidemic.present(day), self.epidemic.infectiousness(day)
            encounters = day_encounters(self.population, start, weekday, present, self.p, self.rng)
            self.truth.record(encounters, infectious, day, self.epidemic.reported(self.s.days))
            self.epidemic.transmit(encounters, day, self.rng)
            stats.encounters = len(encounters)
        with self.phases("world: venues, shared air"):
            visits = day_visits(self.population, self.venues, start, weekday, present, self.habit, self.p, self.rng)
            air = shared_air(visits, infectious > 0)
            self.truth.record_rooms(air, infectious, day)
            stats.room_infections = self.epidemic.transmit_in_rooms(air, self.venues.kind, day, self.rng)
            checked = visits.select(visits.checked_in)
            order = np.argsort(checked.person, kind="stable")
            checked = checked.select(order)
            stats.visits, stats.checkins = len(visits), len(checked)
            self.checkins.append(
                np.column_stack(
                    [checked.person, checked.venue, checked.entry, checked.exit, np.full(len(checked), day)]
                )
            )
        with self.phases("phones: check-ins"):
            for shard in shards:
                lo, hi = np.searchsorted(checked.person, [shard.first, shard.first + shard.size])
                shard.submit(
                    "check_in",
                    checked.person[lo:hi] - shard.first,
                    checked.venue[lo:hi],
                    checked.entry[lo:hi],
                    checked.exit[lo:hi],
                )
            if sum(gather(shards)) != len(checked):
                raise SimulationError(f"the phones did not record the {len(checked)} check-ins of day {day + 1}")
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
                    "record",
                    sightings.observer[part] - shard.first,
                    rpis[heard, slot[part]],
                    sightings.time[part] // 600,
                    sightings.time[part],
                    sightings.rssi[part],
                    aems[heard, slot[part]],
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
            new_f1 = self.collect(shards, checked, day, stats)
            if uploads:
                with self.phases("service: uploads (codes, shares, pushes)"):
                    self.awaiting += self.share_as_contacts(shards, running, new_f1, day, now, stats)
        self.server.stop()  # it exits while the next day is simulated
        new_alerts = sum(1 for first in self.alerts.values() if first == day + 1)
        new_f2 = sum(1 for key, first in self.f2_alerts.items() if first == day + 1 and key not in self.alerts)
        new_venue = sum(1 for first in self.venue_alerts.values() if first == day + 1)
        self.observer.end(
            day,
            f"{stats.diagnosed} diagnosed, {stats.contacts_shared} contacts shared, "
            f"{stats.batch.keys_published if stats.batch else 0} keys published, {stats.keys_held} held, "
            f"{new_alerts} new F1 alerts, {new_f2} F2, {stats.venue_warnings} venue warnings, {new_venue} venue alerts",
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
                accepted, _, rejected, _ = shard.result()
                stats.shared_with_code += 1
            else:
                protos = [
                    keys_pb2.DiagnosisKey(
                        key_data=tek,
                        rolling_start_interval_number=start,
                        rolling_period=period,
                        report_type=keys_pb2.ReportType.ValueType(ReportType.CONFIRMED_TEST),
                        days_since_onset_of_symptoms=days,
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
            # A case who shared as a contact before: the service stores a key once (the same key data and start is
            # a duplicate, whatever the report type), so those days stay published as a contact's only.
            already = [key for key in infectious if (key.key_data, key.rolling_start) in self.uploaded]
            stats.case_keys_shared_as_contact += len(already)
            self.uploaded.update((tek, start) for start, tek, _ in keys)
            published += [(person, key) for key in infectious if key not in already]
            self.warn_venues(shard, local, running, onset, stats)
        return published

    def warn_venues(self, shard: AnyShard, local: int, running: Running, onset: int, stats: DayStats) -> None:
        """A reported case shows the authority its phone's check-ins; for each visit on a day the case was
        infectious, the authority gets the venue owner's trace file and warns the visit's window (SubmitVenueWarning
        over mutual TLS). Warned hours are never held: the next batch publishes them."""
        shard.submit("checkins_for_authority", local)
        for venue_id, entry, exit_ in shard.result():
            visit_day = entry // SECONDS_PER_DAY - self.first_day
            if infectiousness_of(self.config, visit_day - onset) == Infectiousness.NONE:
                continue
            venue, trace = self.venue_of_id[venue_id]
            stats.venue_hours_warned += running.warn_venue(trace, entry, exit_)
            stats.venue_warnings += 1
            self.warned_hours.update(
                (venue, hour) for hour in range(entry // HOUR_SECONDS, (exit_ - 1) // HOUR_SECONDS + 1)
            )

    def share_as_contacts(
        self, shards: list[AnyShard], running: Running, new_f1: list[int], day: int, now: int, stats: DayStats
    ) -> list[tuple[int, SourceKey]]:
        """The morning after ``day``: the people whose phone raised a new F1 alert are designated F1 by the
        authority, unless they are cases (diagnosed by then: they share as cases) or were designated before. Those
        who share get a RECURSIVE code for the exposure day their phone gives (its latest F1 alert) and share
        their keys from that day on; they isolate from this morning. Returns their keys, to be published."""
        published: list[tuple[int, SourceKey]] = []
        for person in new_f1:
            if self.designated[person] or self.epidemic.diagnosed_day[person] <= day:
                continue
            self.designated[person] = True
            stats.designated_f1 += 1
            if not self.would_share[person]:
                continue
            shard, local = _shard_of(shards, person)
            shard.submit("exposure_day", local)
            exposure, refusal = shard.result()
            if exposure is None:
                raise SimulationError(
                    f"person {person}'s phone, designated F1 after an F1 alert, refused to share as "
                    f"a contact: {refusal}"
                )
            code = running.issue_contact_code(exposure)
            shard.submit("share", local, code, now, running.public, self.p.contact_intervals, exposure)
            accepted, _, rejected, keys = shard.result()
            if rejected or accepted != len(keys):
                raise SimulationError(f"the service refused {rejected} of contact {person}'s {len(keys)} keys")
            exposure_day = (dt.date.fromisoformat(exposure) - self.s.start).days
            days = [start // INTERVALS_PER_DAY - self.first_day for start, _, _ in keys]
            if min(days) < exposure_day:
                raise SimulationError(f"contact {person}'s phone sent a key of a day before its exposure")
            self.contact_days[person, days] = True
            self.contact_shares[person] = (day + 1, exposure_day, days)
            if self.p.contacts_isolate:
                self.epidemic.isolate_contact(person, day + 1)
            stats.contacts_shared += 1
            stats.contact_keys_accepted += accepted
            # Contacts' keys carry no days since onset: the service publishes them at the configuration's
            # infectiousness for a missing onset (STANDARD), every one of them. (A contact is never a case yet:
            # none of these keys was uploaded before.)
            self.uploaded.update((tek, start) for start, tek, _ in keys)
            published += [
                (person, SourceKey(f"contact {person}", tek, start, period, ReportType.RECURSIVE))
                for start, tek, period in keys
            ]
        return published

    def note_batches(self, run: dict[str, Any], wall: float, day: int, now: int, stats: DayStats) -> None:
        """Checks what `matcher publish` did against what awaited publication, and keeps the batch's numbers.

        The service holds each section of too few cases apart: cases' keys (F1) and their contacts' (RECURSIVE,
        F2) are never in one section, so a morning may publish one tier and hold the other. The batch's signed
        header says which it published."""
        batches, held = run["batches"], run["held"]
        if len(batches) > 1:
            raise SimulationError(f"matcher publish cut {len(batches)} batches in one morning; expected at most one")
        stats.keys_held = sum(h["keys"] for h in held)
        header = batches[0]["header"] if batches else None
        sections = list(header.sections) if header is not None else []
        venue_sections = [info for info in sections if info.kind == batch_pb2.SECTION_KIND_VENUE]
        sections = [info for info in sections if info.kind != batch_pb2.SECTION_KIND_VENUE]
        contact_sections = [info for info in sections if ReportType.RECURSIVE in info.report_types]
        case_sections = [info for info in sections if ReportType.RECURSIVE not in info.report_types]
        tiers = {True: bool(contact_sections), False: bool(case_sections)}  # is a contact's key -> published
        # With contact-interval pruning a key whose phone heard no one publishes nothing and goes with any batch;
        # when nothing is held, everything that awaited went.
        if self.p.contact_intervals and batches and not stats.keys_held:
            tiers = {True: True, False: True}
        going = [(person, key) for person, key in self.awaiting if tiers[key.report_type == ReportType.RECURSIVE]]
        staying = [(person, key) for person, key in self.awaiting if not tiers[key.report_type == ReportType.RECURSIVE]]
        published = sum(b["keys_published"] for b in batches)
        unexpected = (
            published > len(going) or stats.keys_held > len(staying)
            if self.p.contact_intervals
            else (published != len(going) or stats.keys_held != len(staying))
        )
        if unexpected:
            raise SimulationError(
                f"on morning {day + 1}, matcher publish published {published} keys and held {stats.keys_held}; "
                f"of the {len(self.awaiting)} keys uploaded and not yet published, {len(going)} were in the "
                "sections it published"
            )
        if not batches:
            return
        [batch] = batches
        self.awaiting = staying
        contact_keys = [key for _, key in going if key.report_type == ReportType.RECURSIVE]
        case_keys = [key for _, key in going if key.report_type != ReportType.RECURSIVE]
        stats.cases_published = len({person for person, key in going if key.report_type != ReportType.RECURSIVE})
        stats.contacts_published = len({person for person, key in going if key.report_type == ReportType.RECURSIVE})

        def gaen_bytes(keys: list[SourceKey]) -> int:
            export_bin, export_sig = build_export(
                keys, self.signing_key, region=REGION, start_timestamp=now - SECONDS_PER_DAY, end_timestamp=now
            )
            return len(export_bin) + len(export_sig)

        case_elements = sum(info.count for info in case_sections)
        contact_elements = sum(info.count for info in contact_sections)
        sharing = 0.0
        if case_elements and contact_elements:
            sharing = case_elements * 0.5 * math.log2((case_elements + contact_elements) / case_elements) / 8
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
            gaen_export_bytes=gaen_bytes(case_keys + contact_keys),
            contact_keys_published=len(contact_keys),
            case_elements=case_elements,
            contact_elements=contact_elements,
            contact_bytes=sum(info.length for info in contact_sections),
            case_bytes_for_sharing_budget=sharing,
            gaen_export_bytes_cases=gaen_bytes(case_keys) if case_keys else 0,
            venue_hours=batch["venue_hours"],
            venue_bytes=sum(info.length for info in venue_sections),
        )

    def collect(self, shards: list[AnyShard], checked: list[Checked], day: int, stats: DayStats) -> list[int]:
        """Keeps the morning's numbers and alerts; returns the people with a new F1 alert, in order."""
        new_f1: set[int] = set()
        for shard, result in zip(shards, checked):
            people = slice(shard.first, shard.first + shard.size)
            if day < self.s.days:  # the phones' times are the run's; an extra morning only adds alerts
                self.sync_seconds[day, people] = result.sync_seconds
                self.check_seconds[day, people] = result.check_seconds
            stats.bytes_downloaded += int(result.bytes_downloaded.sum())
            stats.phones_refusing += int((result.refused > 0).sum())
            stats.downloads_interrupted += int(result.interrupted.sum())
            for index, date, level in result.alerts:
                key = (shard.first + index, (dt.date.fromisoformat(date) - self.s.start).days)
                seen = self.alerts if level == "F1" else self.f2_alerts
                if key not in seen:
                    seen[key] = day + 1
                    if level == "F1":
                        new_f1.add(key[0])
            for index, date in result.venue_alerts:
                key = (shard.first + index, (dt.date.fromisoformat(date) - self.s.start).days)
                self.venue_alerts.setdefault(key, day + 1)
        return sorted(new_f1)


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
