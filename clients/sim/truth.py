"""Ground truth: who truly met an infectious person, on which day, for how long, and how close.

Every encounter with a person who was infectious that day is kept as a contact. At the end, contacts with people
whose keys were uploaded are summed per (person, day): the minutes at close range (<= ``close_range_m``) and the
minutes at any distance, each the union of that day's encounter times with each case, summed over cases (as a
phone's daily score sums its windows over cases). A person-day is **truly exposed** when its close minutes reach
``exposure_minutes`` (15).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .encounters import Encounters


@dataclass(frozen=True)
class Exposures:
    """Per (person, day) that had any contact with an infectious reported case."""

    person: np.ndarray  # (m,)
    day: np.ndarray  # (m,)
    close_minutes: np.ndarray  # (m,) float
    any_minutes: np.ndarray  # (m,) float

    def __len__(self) -> int:
        return len(self.person)

    def lookup(self) -> dict[tuple[int, int], int]:
        return {(p, d): i for i, (p, d) in enumerate(zip(self.person.tolist(), self.day.tolist()))}


def union_seconds(spans: list[tuple[int, int]]) -> int:
    """Length of the union of half-open ``[start, end)`` spans."""
    total, reach = 0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


class Truth:
    def __init__(self, close_range_m: float) -> None:
        self.close_range_m = close_range_m
        self._parts: list[np.ndarray] = []  # rows: contact, case, day, start, end, close

    def record(self, encounters: Encounters, infectious: np.ndarray, day: int) -> None:
        """Keeps the day's encounters with a person infectious that day (``infectious``: (n,) > 0 when so)."""
        for case, contact in ((encounters.a, encounters.b), (encounters.b, encounters.a)):
            mask = infectious[case] > 0
            self._parts.append(
                np.column_stack([
                    contact[mask], case[mask], np.full(int(mask.sum()), day), encounters.start[mask],
                    encounters.end[mask], encounters.distance[mask] <= self.close_range_m,
                ]).astype(np.int64)
            )

    def contacts(self) -> np.ndarray:
        """(k, 6) int64 rows: contact, case, day, start, end, close."""
        return np.concatenate(self._parts) if self._parts else np.empty((0, 6), dtype=np.int64)

    def exposures(self, reported: np.ndarray) -> Exposures:
        """Per person-day: minutes with infectious cases whose keys were uploaded (``reported``: (n,) bool)."""
        return exposures_of(self.contacts(), reported)


def exposures_of(contacts: np.ndarray, cases: np.ndarray) -> Exposures:
    """Per person-day: minutes of ``contacts`` (rows of Truth.contacts) with the people marked in ``cases``."""
    rows = contacts[cases[contacts[:, 1]]]
    spans: dict[tuple[int, int, int], list[tuple[int, int]]] = defaultdict(list)
    close: dict[tuple[int, int, int], list[tuple[int, int]]] = defaultdict(list)
    # A loop over contacts with cases, not over sightings: a few thousand rows in a large run.
    for contact, case, day, start, end, is_close in rows.tolist():
        spans[(contact, day, case)].append((start, end))
        if is_close:
            close[(contact, day, case)].append((start, end))
    any_minutes: dict[tuple[int, int], float] = defaultdict(float)
    close_minutes: dict[tuple[int, int], float] = defaultdict(float)
    for (contact, day, case), items in spans.items():
        any_minutes[(contact, day)] += union_seconds(items) / 60
        close_minutes[(contact, day)] += union_seconds(close.get((contact, day, case), [])) / 60
    keys = sorted(any_minutes)
    return Exposures(
        person=np.array([k[0] for k in keys], dtype=np.int64),
        day=np.array([k[1] for k in keys], dtype=np.int64),
        close_minutes=np.array([close_minutes[k] for k in keys]),
        any_minutes=np.array([any_minutes[k] for k in keys]),
    )
