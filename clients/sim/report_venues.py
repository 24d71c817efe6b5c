"""The report's venue part: recall of check-ins against the truth of shared air, next to Bluetooth's on the same
people, and venue alerts by kind.

Definitions (docs/simulation.md explains them):

- A person-day is **truly exposed in a room** when its minutes in a venue at the same time as infectious cases
  whose keys were uploaded reach ``venue_exposure_minutes`` (15). A person so exposed on some day is **found**
  when their phone raised a venue alert for a check-in of one of those days (as F1 recall counts people).
- **Reachable**: the same minutes counting only visits at which both the person and the case checked in (the
  case's phone names the venues to the authority, the person's matches the warning). Recall among reachable
  people measures the mechanism; overall recall also pays for the visits nobody scanned.
- **Bluetooth on the same people**: those whose phone alerted (F1 or F2, kind proximity) for one of those days.
- A **venue false alarm** is a venue alert for a person-day not truly exposed in a room, of three kinds: in the
  room with a case for less than the threshold (``shorter``); at a warned venue in a warned hour but not at the
  same time as the case (``same_hour``: warnings are whole hours); and at no warned venue-hour at all (``no_visit``:
  a filter false positive).
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import numpy as np

from matcher.venues import HOUR_SECONDS

from .params import VENUE_KIND_NAMES
from .run import Outcome


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _people(days: set[tuple[int, int]], alerted: Container[tuple[int, int]] | None = None) -> set[int]:
    """The people with a day in ``days`` (that is in ``alerted``, when given)."""
    return {p for p, d in days if alerted is None or (p, d) in alerted}


def warned_visit_days(outcome: Outcome) -> set[tuple[int, int]]:
    """(person, day) of every check-in that overlapped a warned (venue, hour)."""
    found: set[tuple[int, int]] = set()
    for person, venue, entry, exit_, day in outcome.checkins.tolist():
        hours = range(entry // HOUR_SECONDS, (exit_ - 1) // HOUR_SECONDS + 1)
        if any((venue, hour) in outcome.warned_hours for hour in hours):
            found.add((person, day))
    return found


def venue_report(outcome: Outcome) -> dict[str, Any]:
    threshold = outcome.settings.params.venue_exposure_minutes
    rooms = outcome.room_exposures
    exposed = rooms.exposed(threshold)
    keep = rooms.checked_in_minutes >= threshold
    reachable_days = set(zip(rooms.person[keep].tolist(), rooms.day[keep].tolist()))
    proximity = outcome.alerts.keys() | outcome.f2_alerts.keys()
    venue = outcome.venue_alerts
    people, found = _people(exposed), _people(exposed, venue)
    reachable, found_reachable = _people(reachable_days), _people(reachable_days, venue)
    by_bluetooth = _people(exposed, proximity)
    by_either = found | by_bluetooth
    first: dict[int, int] = {}
    for p, d in sorted(exposed):
        if (p, d) in venue and p not in first:
            first[p] = venue[(p, d)] - d
    delays = list(first.values())

    with_case = set(zip(rooms.person.tolist(), rooms.day.tolist()))
    warned_days = warned_visit_days(outcome)
    kinds = {"true": 0, "shorter": 0, "same_hour": 0, "no_visit": 0}
    for key in outcome.venue_alerts:
        if key in exposed:
            kinds["true"] += 1
        elif key in with_case:
            kinds["shorter"] += 1
        elif key in warned_days:
            kinds["same_hour"] += 1
        else:
            kinds["no_visit"] += 1
    days = outcome.days
    batches = [d.batch for d in days if d.batch is not None]
    person_days = outcome.settings.people * outcome.settings.days
    false = kinds["shorter"] + kinds["same_hour"] + kinds["no_visit"]
    return {
        "recall": _ratio(len(found), len(people)),
        "people": len(people),
        "people_found": len(found),
        "reachable_people": len(reachable),
        "reachable_found": len(found_reachable),
        "recall_reachable": _ratio(len(found_reachable), len(reachable)),
        "bluetooth_found": len(by_bluetooth),
        "bluetooth_recall": _ratio(len(by_bluetooth), len(people)),
        "either_found": len(by_either),
        "recall_either": _ratio(len(by_either), len(people)),
        "mean_days_to_alert": float(np.mean(delays)) if delays else None,
        "alerts": {"total": len(outcome.venue_alerts), **kinds, "false": false},
        "false_alarms_per_10k_person_days": false / person_days * 10_000,
        "visits": sum(d.visits for d in days),
        "checkins": sum(d.checkins for d in days),
        "room_infections": sum(d.room_infections for d in days),
        "warnings": sum(d.venue_warnings for d in days),
        "hours_warned": sum(d.venue_hours_warned for d in days),
        "hours_published": sum(b.venue_hours for b in batches),
        "bytes": sum(b.venue_bytes for b in batches),
        "venues": {name: int((outcome.venue_kinds == kind).sum()) for kind, name in enumerate(VENUE_KIND_NAMES)},
    }
