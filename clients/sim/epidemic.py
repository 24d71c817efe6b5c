"""Infections with ground truth: who was infected when, by whom, when symptoms started, who was diagnosed and
how their keys reached the server.

Infectiousness by days since symptom onset is the default exposure configuration's own table (HIGH from 2 days
before onset to 3 after, STANDARD to day 14, NONE before): the truth and the published risk classes agree on who
was infectious when, so what the simulation measures is the matching and the scoring, not a disagreement about
epidemiology. Days are numbered from the first simulated day (0); NEVER marks what did not happen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from matcher.exposure_config import default_config
from matcher.model import MAX_DAYS_SINCE_ONSET, MIN_DAYS_SINCE_ONSET, Infectiousness

from .encounters import Encounters
from .params import Params
from .venues import SharedAir

NEVER = 1 << 30
# How a diagnosed person's keys reach the server.
NO_UPLOAD, SHARED_WITH_CODE, PUSHED_BY_AUTHORITY, DECLINED = 0, 1, 2, 3


def _infectiousness_table() -> np.ndarray:
    """Infectiousness by days since onset, indexed by ``days - MIN_DAYS_SINCE_ONSET``."""
    mapping = default_config().infectiousness_for_days_since_onset
    return np.array(
        [mapping.get(d, Infectiousness.NONE) for d in range(MIN_DAYS_SINCE_ONSET, MAX_DAYS_SINCE_ONSET + 1)],
        dtype=np.int8,
    )


INFECTIOUSNESS = _infectiousness_table()


@dataclass
class Epidemic:
    infected_day: np.ndarray  # (n,) day of infection (negative: before the run), NEVER if not infected
    onset_day: np.ndarray  # (n,) day symptoms start (or would, for people without symptoms)
    symptomatic: np.ndarray  # (n,) bool
    diagnosed_day: np.ndarray  # (n,) day of the positive test (result in the evening), NEVER if never
    upload: np.ndarray  # (n,) NO_UPLOAD, SHARED_WITH_CODE, PUSHED_BY_AUTHORITY or DECLINED
    infected_by: np.ndarray  # (n,) the infector, -1 for seeded and imported infections
    params: Params
    # (n,) the day from whose morning a case's contact who shared as one is isolated, NEVER if never (set by the
    # run: who shares depends on the phones' alerts). Empty means nobody.
    isolated_as_contact: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if not len(self.isolated_as_contact):
            self.isolated_as_contact = np.full(len(self.infected_day), NEVER, dtype=np.int64)

    @classmethod
    def seeded(cls, people: int, days: int, params: Params, rng: np.random.Generator) -> Epidemic:
        """Nobody infected, then ``infected_share`` of the people with symptom onsets spread over the run."""
        epidemic = cls(
            infected_day=np.full(people, NEVER, dtype=np.int64),
            onset_day=np.full(people, NEVER, dtype=np.int64),
            symptomatic=np.zeros(people, dtype=bool),
            diagnosed_day=np.full(people, NEVER, dtype=np.int64),
            upload=np.full(people, NO_UPLOAD, dtype=np.int8),
            infected_by=np.full(people, -1, dtype=np.int64),
            params=params,
        )
        seeds = rng.choice(people, size=min(people, round(params.infected_share * people)), replace=False)
        onset = rng.integers(0, max(1, days - 1), len(seeds))
        epidemic._infect(seeds, onset - epidemic._incubation(len(seeds), rng), np.full(len(seeds), -1), rng, onset)
        return epidemic

    @property
    def size(self) -> int:
        return len(self.infected_day)

    def _incubation(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Days from infection to onset, 3..10. At least 3: infectiousness starts 2 days before onset, and a
        person is never infectious on the day of their own infection (the truth records a day's contacts before
        its infections, while the published key of that day would already count as infectious)."""
        drawn = np.rint(rng.lognormal(np.log(self.params.incubation_days_median), 0.35, n))
        return np.clip(drawn, 3, 10).astype(np.int64)

    def _infect(
        self,
        people: np.ndarray,
        day: np.ndarray,
        by: np.ndarray,
        rng: np.random.Generator,
        onset: np.ndarray | None = None,
    ) -> None:
        """Infects ``people`` on ``day`` (by ``by``, -1 from outside); their onset follows after an incubation
        period unless given."""
        p = self.params
        n = len(people)
        self.infected_day[people] = day
        self.infected_by[people] = by
        onset = day + self._incubation(n, rng) if onset is None else onset
        self.onset_day[people] = onset
        symptomatic = rng.random(n) < p.symptomatic_share
        self.symptomatic[people] = symptomatic
        tested = symptomatic & (rng.random(n) < p.tested_share)
        self.diagnosed_day[people] = np.where(tested, onset + rng.integers(0, 3, n), NEVER)
        choice = rng.random(n)
        upload = np.where(
            choice < p.share_with_code,
            SHARED_WITH_CODE,
            np.where(choice < p.share_with_code + p.pushed_by_authority, PUSHED_BY_AUTHORITY, DECLINED),
        )
        self.upload[people] = np.where(tested, upload, NO_UPLOAD)

    def infectiousness(self, day: int) -> np.ndarray:
        """Everyone's true infectiousness on ``day``: (n,) Infectiousness values."""
        since = day - self.onset_day
        known = (self.infected_day <= day) & (since >= MIN_DAYS_SINCE_ONSET) & (since <= MAX_DAYS_SINCE_ONSET)
        result = np.zeros(self.size, dtype=np.int8)
        result[known] = INFECTIOUSNESS[since[known] - MIN_DAYS_SINCE_ONSET]
        return result

    def present(self, day: int) -> np.ndarray:
        """Who is out and about: everyone but people diagnosed before ``day`` and contacts who shared as such on
        the morning of ``day`` or earlier (in isolation)."""
        return (self.diagnosed_day >= day) & (self.isolated_as_contact > day)

    def isolate_contact(self, person: int, day: int) -> None:
        """``person`` shared as a case's contact on the morning of ``day`` and is isolated from then on."""
        self.isolated_as_contact[person] = min(int(self.isolated_as_contact[person]), day)

    def diagnosed_on(self, day: int) -> np.ndarray:
        return np.flatnonzero(self.diagnosed_day == day)

    def reported(self, days: int) -> np.ndarray:
        """(n,) bool: people whose keys were uploaded (with a code or by the authority) in a run of ``days`` days:
        diagnosed on one of them, they upload the next morning."""
        return np.isin(self.upload, (SHARED_WITH_CODE, PUSHED_BY_AUTHORITY)) & (self.diagnosed_day < days)

    def _weights(self) -> np.ndarray:
        """Relative infectiousness by Infectiousness value (NONE, STANDARD, HIGH)."""
        return np.array([0.0, self.params.relative_infectiousness_standard, 1.0])

    def transmit_in_rooms(self, air: SharedAir, kind: np.ndarray, day: int, rng: np.random.Generator) -> int:
        """Airborne infections of ``day`` in venues: ``air`` pairs each visitor with the people in the room
        (``kind``: each venue's kind); the hazard adds up over the infectious ones. Returns how many."""
        infectious = self.infectiousness(day)
        at_risk = (infectious[air.source] > 0) & (self.infected_day[air.visitor] == NEVER)
        rate = np.array(self.params.airborne_per_minute)[kind[air.venue[at_risk]]]
        hazard = rate * air.seconds[at_risk] / 60 * self._weights()[infectious[air.source[at_risk]]]
        visitor = air.visitor[at_risk]
        people, where = np.unique(visitor, return_inverse=True)
        total = np.bincount(where.ravel(), weights=hazard, minlength=len(people))
        caught = rng.random(len(people)) < -np.expm1(-total)
        # The infector: the infectious person of the largest hazard, for the record.
        order = np.lexsort((-hazard, where.ravel()))
        first = order[np.searchsorted(where.ravel()[order], np.arange(len(people)))]
        by = air.source[at_risk][first]
        self._infect(people[caught], np.full(int(caught.sum()), day), by[caught], rng)
        return int(caught.sum())

    def transmit(self, encounters: Encounters, day: int, rng: np.random.Generator) -> int:
        """Infections of ``day``, from the day's encounters and from outside; returns how many."""
        p = self.params
        infectious = self.infectiousness(day)
        weight = self._weights()
        susceptible = self.infected_day == NEVER
        infected: list[np.ndarray] = []
        infectors: list[np.ndarray] = []
        for source, target in ((encounters.a, encounters.b), (encounters.b, encounters.a)):
            at_risk = (infectious[source] > 0) & susceptible[target]
            minutes = encounters.duration[at_risk] / 60
            closeness = np.minimum(1.0, 1.0 / encounters.distance[at_risk] ** 2)
            hazard = p.transmission_per_minute * minutes * closeness * weight[infectious[source[at_risk]]]
            caught = rng.random(len(hazard)) < -np.expm1(-hazard)
            infected.append(target[at_risk][caught])
            infectors.append(source[at_risk][caught])
        people, first = np.unique(np.concatenate(infected), return_index=True)
        by = np.concatenate(infectors)[first]
        imported = np.flatnonzero(susceptible & (rng.random(self.size) < p.imported_per_person_day))
        imported = np.setdiff1d(imported, people)
        self._infect(people, np.full(len(people), day), by, rng)
        self._infect(imported, np.full(len(imported), day), np.full(len(imported), -1), rng)
        return len(people) + len(imported)
