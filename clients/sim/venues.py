"""Venues and the day's visits: shops, restaurants and offices, who was in which room when, and the air they
shared. Whole arrays, no loop per person or per visit.

- Shops and restaurants: anybody out and about (not in isolation) visits them by chance, any day.
- Offices: every workplace is one; its workers present on a weekday spend the working day there.
- A visitor who has the habit (``checkin_share``, drawn once per person) scans the door's QR code: the phone
  records the visit, entry to exit.
- Shared air: every pair of visits of the same venue that overlap in time, with how long; an infectious visitor
  exposes everyone in the room for the overlap (airborne spread, :meth:`.epidemic.Epidemic.transmit_in_rooms`).

Visits stay inside their UTC day (ending 10 minutes before midnight, as encounters do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .encounters import HOUR, LAST_SECOND, MINUTE
from .params import OFFICE, RESTAURANT, SHOP, VENUE_KIND_NAMES, Params
from .population import WORKER, Population


@dataclass(frozen=True)
class Venues:
    kind: np.ndarray  # (v,) SHOP, RESTAURANT or OFFICE
    office_of_group: np.ndarray  # (groups,) the office venue of each workplace group, -1 for school classes

    def __len__(self) -> int:
        return len(self.kind)

    def name(self, venue: int) -> str:
        return f"{VENUE_KIND_NAMES[int(self.kind[venue])]} {venue}"


@dataclass(frozen=True)
class Visits:
    person: np.ndarray  # (n,)
    venue: np.ndarray  # (n,)
    entry: np.ndarray  # (n,) unix seconds
    exit: np.ndarray  # (n,) unix seconds, > entry
    checked_in: np.ndarray  # (n,) bool: the visitor's phone recorded the visit

    def __len__(self) -> int:
        return len(self.person)

    def select(self, mask: np.ndarray) -> Visits:
        return Visits(self.person[mask], self.venue[mask], self.entry[mask], self.exit[mask], self.checked_in[mask])


def build_venues(pop: Population, params: Params) -> Venues:
    shops = max(1, round(params.shops_per_person * pop.size))
    restaurants = max(1, round(params.restaurants_per_person * pop.size))
    groups = int(pop.group.max()) + 1 if pop.size else 0
    is_workplace = np.zeros(groups, dtype=bool)
    is_workplace[pop.group[(pop.role == WORKER) & (pop.group >= 0)]] = True
    office_of_group = np.full(groups, -1, dtype=np.int64)
    office_of_group[is_workplace] = shops + restaurants + np.arange(int(is_workplace.sum()))
    kind = np.concatenate(
        [np.full(shops, SHOP), np.full(restaurants, RESTAURANT), np.full(int(is_workplace.sum()), OFFICE)]
    ).astype(np.int8)
    return Venues(kind=kind, office_of_group=office_of_group)


def check_in_habit(people: int, params: Params, rng: np.random.Generator) -> np.ndarray:
    """(n,) bool: who scans a venue's QR code at every visit."""
    return rng.random(people) < params.checkin_share


def _chance_visits(
    venues: Venues,
    kind: int,
    present: np.ndarray,
    rate: float,
    minutes_median: float,
    opening: tuple[float, float],
    day_start: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    choices = np.flatnonzero(venues.kind == kind)
    people = np.flatnonzero(present)
    person = np.repeat(people, rng.poisson(rate, len(people)))
    venue = choices[rng.integers(0, len(choices), len(person))]
    entry = day_start + (rng.uniform(*opening, len(person)) * HOUR).astype(np.int64)
    stay = np.clip(rng.lognormal(np.log(minutes_median), 0.5, len(person)), 3, 4 * 60) * MINUTE
    return person, venue, entry, entry + stay.astype(np.int64)


def day_visits(
    pop: Population,
    venues: Venues,
    day_start: int,
    weekday: int,
    present: np.ndarray,
    habit: np.ndarray,
    params: Params,
    rng: np.random.Generator,
) -> Visits:
    """The visits of the UTC day starting at ``day_start``; ``present`` marks who is not in isolation and
    ``habit`` who checks in (:func:`check_in_habit`)."""
    parts = [
        _chance_visits(
            venues,
            SHOP,
            present,
            params.shop_visits_per_person,
            params.shop_minutes_median,
            (8.0, 20.0),
            day_start,
            rng,
        ),
        _chance_visits(
            venues,
            RESTAURANT,
            present,
            params.restaurant_visits_per_person,
            params.restaurant_minutes_median,
            (11.5, 21.0),
            day_start,
            rng,
        ),
    ]
    if weekday < 5:
        workers = np.flatnonzero(present & (pop.role == WORKER) & (pop.group >= 0))
        entry = day_start + (rng.uniform(7.5, 9.5, len(workers)) * HOUR).astype(np.int64)
        hours = np.clip(rng.lognormal(np.log(params.office_hours_median), 0.15, len(workers)), 4, 11)
        parts.append(
            (workers, venues.office_of_group[pop.group[workers]], entry, entry + (hours * HOUR).astype(np.int64))
        )
    person, venue, entry, exit_ = (np.concatenate(column).astype(np.int64) for column in zip(*parts))
    exit_ = np.minimum(exit_, day_start + LAST_SECOND)
    visits = Visits(person, venue, entry, exit_, habit[person])
    return visits.select(visits.exit > visits.entry)


@dataclass(frozen=True)
class SharedAir:
    """Pairs of overlapping visits of one venue: ``visitor`` was in the room with ``source`` for ``seconds``."""

    visitor: np.ndarray  # (m,) person
    source: np.ndarray  # (m,) person
    venue: np.ndarray  # (m,)
    seconds: np.ndarray  # (m,) > 0
    visitor_checked_in: np.ndarray  # (m,) bool
    source_checked_in: np.ndarray  # (m,) bool

    def __len__(self) -> int:
        return len(self.visitor)


def shared_air(visits: Visits, sources: np.ndarray) -> SharedAir:
    """Every other visit that overlapped a visit by one of the people marked in ``sources`` ((n,) bool), at the
    same venue: one join over the visits sorted by venue, no loop."""
    order = np.argsort(visits.venue, kind="stable")
    venue_sorted = visits.venue[order]
    mine = np.flatnonzero(sources[visits.person])
    lo = np.searchsorted(venue_sorted, visits.venue[mine], side="left")
    hi = np.searchsorted(venue_sorted, visits.venue[mine], side="right")
    source_visit = np.repeat(mine, hi - lo)
    within = np.arange(len(source_visit)) - np.repeat(np.cumsum(hi - lo) - (hi - lo), hi - lo)
    other = order[np.repeat(lo, hi - lo) + within]
    seconds = np.minimum(visits.exit[source_visit], visits.exit[other]) - np.maximum(
        visits.entry[source_visit], visits.entry[other]
    )
    keep = (seconds > 0) & (visits.person[other] != visits.person[source_visit])
    source_visit, other = source_visit[keep], other[keep]
    return SharedAir(
        visitor=visits.person[other],
        source=visits.person[source_visit],
        venue=visits.venue[other],
        seconds=seconds[keep],
        visitor_checked_in=visits.checked_in[other],
        source_checked_in=visits.checked_in[source_visit],
    )
