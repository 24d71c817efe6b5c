"""One day's encounters: who met whom, when, for how long and how far apart. Whole arrays, no loop per person.

- At home, every day: every pair of a household, in the morning and the evening (and at midday at weekends).
- At work or school, on weekdays: desk or class neighbours for an hour or more, and meetings with random
  colleagues.
- By chance, every day: shops, transport, streets, with anybody.

People in isolation (diagnosed on an earlier day) meet nobody. Durations and distances are log-normal around the
medians of :class:`.params.Params`; each encounter keeps one distance throughout (a long contact at varying
distances is several encounters).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .params import CHANCE, HOME, WORK, Params
from .population import HOME_ONLY, Population

HOUR = 3600
MINUTE = 60
# Nobody meets anybody in the last ten minutes of a UTC day: an encounter never spans two daily keys' days.
LAST_SECOND = 24 * HOUR - 10 * MINUTE


@dataclass(frozen=True)
class Encounters:
    a: np.ndarray  # (n,) person
    b: np.ndarray  # (n,) person
    start: np.ndarray  # (n,) unix seconds
    duration: np.ndarray  # (n,) seconds, > 0
    distance: np.ndarray  # (n,) metres
    setting: np.ndarray  # (n,) HOME, WORK or CHANCE

    def __len__(self) -> int:
        return len(self.a)

    @property
    def end(self) -> np.ndarray:
        end: np.ndarray = self.start + self.duration
        return end

    def select(self, mask: np.ndarray) -> Encounters:
        return Encounters(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Encounters]) -> Encounters:
        return Encounters(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Encounters)})


def _lognormal(rng: np.random.Generator, median: float, sigma: float, size: int, low: float, high: float) -> np.ndarray:
    return np.clip(rng.lognormal(np.log(median), sigma, size), low, high)


def _segment(
    pairs: np.ndarray,
    day_start: int,
    setting: int,
    starts_hours: tuple[float, float],
    minutes: np.ndarray,
    distance: np.ndarray,
    rng: np.random.Generator,
) -> Encounters:
    begin = day_start + (rng.uniform(*starts_hours, len(pairs)) * HOUR).astype(np.int64)
    end = np.minimum(begin + (minutes * MINUTE).astype(np.int64), day_start + LAST_SECOND)
    return Encounters(
        a=pairs[:, 0].astype(np.int64),
        b=pairs[:, 1].astype(np.int64),
        start=begin,
        duration=end - begin,
        distance=distance.astype(np.float64),
        setting=np.full(len(pairs), setting, dtype=np.int8),
    )


def _at_home(
    pop: Population, pairs: np.ndarray, day_start: int, weekend: bool, p: Params, rng: np.random.Generator
) -> list[Encounters]:
    n = len(pairs)

    def distance() -> np.ndarray:
        return _lognormal(rng, p.home_distance_median, 0.5, n, 0.3, 8.0)

    parts = [
        _segment(pairs, day_start, HOME, (6.5, 7.5), rng.uniform(10, 45, n), distance(), rng),
        _segment(pairs, day_start, HOME, (18.0, 20.0), _lognormal(rng, 60, 0.5, n, 20, 240), distance(), rng),
    ]
    if weekend:
        parts.append(_segment(pairs, day_start, HOME, (11.0, 13.0), rng.uniform(30, 120, n), distance(), rng))
    return parts


def _at_work(
    pop: Population, present: np.ndarray, day_start: int, p: Params, rng: np.random.Generator
) -> list[Encounters]:
    pairs = pop.neighbour_pairs[present[pop.neighbour_pairs].all(axis=1)]
    n = len(pairs)
    desks = _segment(
        pairs,
        day_start,
        WORK,
        (8.5, 14.0),
        rng.uniform(45, 150, n),
        _lognormal(rng, p.desk_distance_median, 0.35, n, 0.8, 6.0),
        rng,
    )
    # Meetings: each member present asks a random member of the same group (possibly a desk neighbour).
    members = np.flatnonzero((pop.group >= 0) & present)
    order = members[np.argsort(pop.group[members], kind="stable")]
    groups = pop.group[order]
    first = np.searchsorted(groups, groups, side="left")
    size = np.searchsorted(groups, groups, side="right") - first
    asks = rng.poisson(p.meetings_per_worker, len(order))
    who = np.repeat(np.arange(len(order)), asks)
    partner = order[first[who] + (rng.random(len(who)) * size[who]).astype(np.int64)]
    mine = order[who]
    keep = partner != mine
    pairs = np.column_stack([mine[keep], partner[keep]])
    n = len(pairs)
    meetings = _segment(
        pairs,
        day_start,
        WORK,
        (9.0, 16.5),
        _lognormal(rng, p.meeting_minutes_median, 0.7, n, 5, 120),
        _lognormal(rng, p.meeting_distance_median, 0.4, n, 0.5, 5.0),
        rng,
    )
    return [desks, meetings]


def _by_chance(present: np.ndarray, day_start: int, p: Params, rng: np.random.Generator) -> Encounters:
    people = np.flatnonzero(present)
    if len(people) < 2:
        return _segment(np.empty((0, 2), dtype=np.int64), day_start, CHANCE, (7, 8), np.empty(0), np.empty(0), rng)
    # Each encounter involves two people, so each person starts half of their expected encounters.
    starts = rng.poisson(p.chance_per_person / 2, len(people))
    mine = np.repeat(people, starts)
    partner = people[rng.integers(0, len(people), len(mine))]
    keep = partner != mine
    pairs = np.column_stack([mine[keep], partner[keep]])
    n = len(pairs)
    return _segment(
        pairs,
        day_start,
        CHANCE,
        (7.0, 21.5),
        _lognormal(rng, p.chance_minutes_median, 0.9, n, 1, 90),
        _lognormal(rng, p.chance_distance_median, 0.6, n, 0.3, 15.0),
        rng,
    )


def day_encounters(
    pop: Population, day_start: int, weekday: int, present: np.ndarray, params: Params, rng: np.random.Generator
) -> Encounters:
    """The encounters of the UTC day starting at ``day_start`` (unix seconds); ``weekday`` 0 is Monday;
    ``present`` marks who is not in isolation."""
    weekend = weekday >= 5
    home_pairs = pop.household_pairs[present[pop.household_pairs].all(axis=1)]
    parts = _at_home(pop, home_pairs, day_start, weekend, params, rng)
    if not weekend:
        parts += _at_work(pop, present & (pop.role != HOME_ONLY), day_start, params, rng)
    parts.append(_by_chance(present, day_start, params, rng))
    encounters = Encounters.concat(parts)
    return encounters.select(encounters.duration > 0)
