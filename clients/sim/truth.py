"""Ground truth: who truly met an infectious person, on which day, for how long, and how close; and who truly met
a case's contact who shared as one (F2).

Every encounter with a person who was infectious that day is kept as a contact. At the end, contacts with people
whose keys were uploaded are summed per (person, day): the minutes at close range (<= ``close_range_m``) and the
minutes at any distance, each the union of that day's encounter times with each case, summed over cases (as a
phone's daily score sums its windows over cases). A person-day is **truly exposed** (F1) when its close minutes
reach ``exposure_minutes`` (15).

For F2, every encounter of a person who may become a sharing contact is kept too: anyone who has met an
infectious person whose keys will be uploaded (only they can raise a real F1 alert, and only alerted people share
as contacts). At the end, the minutes with people who were truly F1-exposed, counted from the start of their
exposure (the first close contact with a case on their first truly exposed day) and only on days whose key they
uploaded as a contact, are summed the same way. A person-day is **truly F2-exposed** when those close minutes reach
``exposure_minutes`` and it is not truly F1-exposed (the report applies that last rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .encounters import Encounters
from .venues import SharedAir


@dataclass(frozen=True)
class Exposures:
    """Per (person, day) that had any contact with an infectious reported case."""

    person: np.ndarray  # (m,)
    day: np.ndarray  # (m,)
    close_minutes: np.ndarray  # (m,) float
    any_minutes: np.ndarray  # (m,) float

    def __len__(self) -> int:
        return len(self.person)

    @classmethod
    def empty(cls) -> Exposures:
        return cls(*(np.empty(0, dtype=dtype) for dtype in (np.int64, np.int64, np.float64, np.float64)))

    def exposed(self, threshold: float) -> set[tuple[int, int]]:
        """The (person, day) whose close minutes reach ``threshold``."""
        keep = self.close_minutes >= threshold
        return set(zip(self.person[keep].tolist(), self.day[keep].tolist()))

    def lookup(self) -> dict[tuple[int, int], int]:
        return {(p, d): i for i, (p, d) in enumerate(zip(self.person.tolist(), self.day.tolist()))}


def union_seconds_by_group(group: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """For half-open spans ``[start, end)`` labelled by ``group`` (ints >= 0): each span's share of its group's
    union, so that summing a group's shares gives the length of its union (overlaps count once). Whole arrays: the
    spans sorted by group then start, a running maximum of the ends tells how much of each span is new."""
    if not len(group):
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((start, group))
    rank = np.unique(group[order], return_inverse=True)[1].astype(np.int64)
    base = int(min(start.min(), end.min()))
    span = int(max(start.max(), end.max())) - base + 1
    # Each group in a band of its own on one line: a running maximum never carries from one group to the next.
    s = start[order] - base + rank * span
    e = end[order] - base + rank * span
    reach = np.maximum.accumulate(e)
    before = np.r_[np.iinfo(np.int64).min, reach[:-1]]
    shares = np.maximum(e - np.maximum(s, before), 0)
    result = np.empty_like(shares)
    result[order] = shares
    return result


def union_seconds(spans: list[tuple[int, int]]) -> int:
    """Length of the union of half-open ``[start, end)`` spans."""
    if not spans:
        return 0
    start, end = (np.array(column, dtype=np.int64) for column in zip(*spans))
    return int(union_seconds_by_group(np.zeros(len(spans), dtype=np.int64), start, end).sum())


def _rows(
    encounters: Encounters, mask: np.ndarray, contact: np.ndarray, other: np.ndarray, day: int, close_range_m: float
) -> np.ndarray:
    """Rows (contact, other, day, start, end, close) of the encounters in ``mask``."""
    return np.column_stack(
        [
            contact[mask],
            other[mask],
            np.full(int(mask.sum()), day),
            encounters.start[mask],
            encounters.end[mask],
            encounters.distance[mask] <= close_range_m,
        ]
    ).astype(np.int64)


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty((0, 6), dtype=np.int64)


@dataclass(frozen=True)
class RoomExposures:
    """Per (person, day) that shared a room's air with an infectious reported case."""

    person: np.ndarray  # (m,)
    day: np.ndarray  # (m,)
    minutes: np.ndarray  # (m,) float: in the room at the same time as cases, summed over cases
    # (m,) float: the same, counting only the times both the person and the case had checked in: what check-ins
    # can warn, as the case's phone names the venues and the person's matches them
    checked_in_minutes: np.ndarray

    def __len__(self) -> int:
        return len(self.person)

    @classmethod
    def empty(cls) -> RoomExposures:
        return cls(*(np.empty(0, dtype=dtype) for dtype in (np.int64, np.int64, np.float64, np.float64)))

    def exposed(self, threshold: float) -> set[tuple[int, int]]:
        keep = self.minutes >= threshold
        return set(zip(self.person[keep].tolist(), self.day[keep].tolist()))


class Truth:
    def __init__(self, close_range_m: float) -> None:
        self.close_range_m = close_range_m
        self._rooms: list[np.ndarray] = []  # rows: visitor, case, day, seconds, both checked in
        self._parts: list[np.ndarray] = []  # rows: contact, case, day, start, end, close
        self._near: list[np.ndarray] = []  # rows: contact, source (a possible sharing contact), day, start, end, close
        self._met: np.ndarray | None = None  # (n,) bool: has met an infectious person whose keys will be uploaded

    def record(
        self, encounters: Encounters, infectious: np.ndarray, day: int, reported: np.ndarray | None = None
    ) -> None:
        """Keeps the day's encounters with a person infectious that day (``infectious``: (n,) > 0 when so) and,
        given ``reported`` ((n,) bool: whose keys will be uploaded), every encounter of a person who has met an
        infectious reported person that day or before: they are the only ones who may share as a case's contact."""
        for case, contact in ((encounters.a, encounters.b), (encounters.b, encounters.a)):
            self._parts.append(_rows(encounters, infectious[case] > 0, contact, case, day, self.close_range_m))
        if reported is None:
            return
        if self._met is None:
            self._met = np.zeros(len(infectious), dtype=bool)
        for case, contact in ((encounters.a, encounters.b), (encounters.b, encounters.a)):
            self._met[contact[(infectious[case] > 0) & reported[case]]] = True
        for source, contact in ((encounters.a, encounters.b), (encounters.b, encounters.a)):
            self._near.append(_rows(encounters, self._met[source], contact, source, day, self.close_range_m))

    def record_rooms(self, air: SharedAir, infectious: np.ndarray, day: int) -> None:
        """Keeps the day's shared air with a person infectious that day."""
        mask = infectious[air.source] > 0
        self._rooms.append(
            np.column_stack(
                [
                    air.visitor[mask],
                    air.source[mask],
                    np.full(int(mask.sum()), day),
                    air.seconds[mask],
                    air.visitor_checked_in[mask] & air.source_checked_in[mask],
                ]
            ).astype(np.int64)
        )

    def room_exposures(self, reported: np.ndarray) -> RoomExposures:
        """Per person-day: minutes in a room with infectious cases whose keys were uploaded."""
        rows = np.concatenate(self._rooms) if self._rooms else np.empty((0, 5), dtype=np.int64)
        rows = rows[reported[rows[:, 1]]]
        days, where = np.unique(rows[:, [0, 2]], axis=0, return_inverse=True)
        where = where.ravel()
        days = days.reshape(-1, 2)
        return RoomExposures(
            person=days[:, 0].astype(np.int64),
            day=days[:, 1].astype(np.int64),
            minutes=np.bincount(where, weights=rows[:, 3], minlength=len(days)) / 60,
            checked_in_minutes=np.bincount(where, weights=rows[:, 3] * rows[:, 4], minlength=len(days)) / 60,
        )

    def contacts(self) -> np.ndarray:
        """(k, 6) int64 rows: contact, case, day, start, end, close."""
        return _stack(self._parts)

    def near_contacts(self) -> np.ndarray:
        """(k, 6) int64 rows: contact, source, day, start, end, close: every encounter of a person who had met an
        infectious reported person by then (``record`` with ``reported``)."""
        return _stack(self._near)

    def exposures(self, reported: np.ndarray) -> Exposures:
        """Per person-day: minutes with infectious cases whose keys were uploaded (``reported``: (n,) bool)."""
        return exposures_of(self.contacts(), reported)


def exposures_of(contacts: np.ndarray, cases: np.ndarray) -> Exposures:
    """Per person-day: minutes of ``contacts`` (rows of Truth.contacts) with the people marked in ``cases``."""
    return minutes_of(contacts[cases[contacts[:, 1]]])


def exposure_starts(contacts: np.ndarray, cases: np.ndarray, exposed: set[tuple[int, int]]) -> dict[int, int]:
    """When each truly F1-exposed person's exposure began (unix seconds): the start of their first close contact
    with a case in ``cases`` on their first truly exposed day (``exposed``: the truly exposed (person, day))."""
    first: dict[int, int] = {}
    for person, day in exposed:
        if person not in first or day < first[person]:
            first[person] = day
    starts: dict[int, int] = {}
    rows = contacts[cases[contacts[:, 1]] & (contacts[:, 5] == 1)]
    for contact, _, day, start, _, _ in rows.tolist():
        if first.get(contact) == day and (contact not in starts or start < starts[contact]):
            starts[contact] = start
    return starts


def f2_minutes(near: np.ndarray, shared: np.ndarray, starts: dict[int, int] | None = None) -> Exposures:
    """Per person-day: minutes of ``near`` (rows of Truth.near_contacts) with sources who shared that day's key as
    a case's contact (``shared``: (people, days) bool). With ``starts`` (exposure_starts), only sources truly
    F1-exposed, and only their minutes from the start of their exposure on: the truth of F2. Without, every
    sharing contact's minutes: what a phone could match."""
    days = shared.shape[1]
    in_run = near[near[:, 2] < days]
    rows = in_run[shared[in_run[:, 1], in_run[:, 2]]]
    if starts is None:
        return minutes_of(rows)
    sources = np.array(list(starts), dtype=np.int64)
    table = np.full(max(int(rows[:, 1].max(initial=-1)), int(sources.max(initial=-1))) + 1, -1, dtype=np.int64)
    table[sources] = np.array(list(starts.values()), dtype=np.int64)
    begin = table[rows[:, 1]]
    rows = rows[begin >= 0]
    begin = begin[begin >= 0]
    # On the exposure day only the minutes after the exposure began count; the days after it, all of them.
    clipped = rows.copy()
    clipped[:, 3] = np.maximum(rows[:, 3], begin)
    return minutes_of(clipped[clipped[:, 3] < clipped[:, 4]])


def minutes_of(rows: np.ndarray) -> Exposures:
    """Per person-day: the minutes of contact rows (contact, other, day, start, end, close), the union per other
    person, summed over other people, at close range and at any distance."""
    if not len(rows):
        return Exposures.empty()
    contact, other, day, start, end, close = rows.T
    # One group per (contact, day, other): the union is per other person, the sum over them.
    pair = np.unique(np.column_stack([contact, day, other]), axis=0, return_inverse=True)[1].ravel()
    any_share = union_seconds_by_group(pair, start, end)
    close_share = np.zeros(len(rows), dtype=np.int64)
    near = close == 1
    close_share[near] = union_seconds_by_group(pair[near], start[near], end[near])
    days, person_day = np.unique(np.column_stack([contact, day]), axis=0, return_inverse=True)
    person_day = person_day.ravel()
    return Exposures(
        person=days[:, 0].astype(np.int64),
        day=days[:, 1].astype(np.int64),
        close_minutes=np.bincount(person_day, weights=close_share, minlength=len(days)) / 60,
        any_minutes=np.bincount(person_day, weights=any_share, minlength=len(days)) / 60,
    )
