"""The report: recall, false alarms, bytes and time, computed from a simulation's outcome; as a JSON object, a
text summary and PNG plots.

Definitions (docs/simulation.md explains them):

- A person-day is **truly exposed** when its minutes at close range with infectious cases whose keys were uploaded
  reach the threshold (15). A person's exposure is their worst day; they are **found** when their phone alerted
  for that day. Recall is found / exposed, overall (>= 15 minutes) and by duration bucket.
- A **false alarm** is an alert for a person-day that was not truly exposed. Three kinds: after a contact with
  cases shorter than the threshold, after a long enough contact that was not all at close range (both are the
  scoring's approximation: time from scans, distance from attenuation), and with no contact with any case that
  day at all (a **filter false positive**: what docs/spec.md's target of 1 false alarm per 10,000 phones per
  year bounds).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matcher.fprate import DAYS_PER_YEAR, FALSE_ALARMS_PER_PHONE_YEAR, GAEN_BYTES_PER_KEY

from .epidemic import DECLINED, NEVER, PUSHED_BY_AUTHORITY, SHARED_WITH_CODE
from .run import Outcome
from .truth import exposures_of

# Minutes at close range on a person's worst day; the last bucket has no upper end.
DURATION_BUCKETS: tuple[tuple[float, float], ...] = ((5, 10), (10, 15), (15, 30), (30, math.inf))
TARGET_PER_10K_PERSON_DAYS = FALSE_ALARMS_PER_PHONE_YEAR / DAYS_PER_YEAR * 10_000


def bucket_label(low: float, high: float) -> str:
    return f"{low:g}+ min" if math.isinf(high) else f"{low:g}-{high:g} min"


def per_10k(count: int, person_days: int) -> float:
    return count / person_days * 10_000 if person_days else 0.0


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


ALERT_KINDS = ("true", "shorter", "farther", "no_contact")


@dataclass(frozen=True)
class AlertKinds:
    """Every alerted person-day, by what the truth says about it."""

    true: int  # truly exposed: >= the threshold at close range
    shorter: int  # in contact with cases for less than the threshold, at any distance
    farther: int  # in contact for the threshold or longer, but not all of it at close range
    no_contact: int  # no contact with any case that day: a filter false positive
    by_morning: dict[int, tuple[int, int, int, int]]  # morning -> new alerts of each kind, in ALERT_KINDS order

    @property
    def false(self) -> int:
        return self.shorter + self.farther + self.no_contact


def classify_alerts(outcome: Outcome) -> AlertKinds:
    threshold = outcome.settings.params.exposure_minutes
    exposures = outcome.exposures
    index = exposures.lookup()
    counts = [0, 0, 0, 0]
    by_morning: dict[int, list[int]] = {}
    for key, morning in outcome.alerts.items():
        row = index.get(key)
        if row is None:
            kind = 3
        elif exposures.close_minutes[row] >= threshold:
            kind = 0
        else:
            kind = 2 if exposures.any_minutes[row] >= threshold else 1
        counts[kind] += 1
        by_morning.setdefault(morning, [0, 0, 0, 0])[kind] += 1
    return AlertKinds(*counts, by_morning={m: tuple(v) for m, v in sorted(by_morning.items())})


def recall_by_duration(outcome: Outcome) -> list[dict[str, Any]]:
    """Per bucket of a person's worst-day close minutes: people, found, recall."""
    exposures = outcome.exposures
    worst: dict[int, int] = {}
    for row, person in enumerate(exposures.person.tolist()):
        if person not in worst or exposures.close_minutes[row] > exposures.close_minutes[worst[person]]:
            worst[person] = row
    rows = []
    for low, high in DURATION_BUCKETS:
        people = [
            person for person, row in worst.items() if low <= exposures.close_minutes[row] < high
        ]
        found = sum(1 for person in people if (person, int(exposures.day[worst[person]])) in outcome.alerts)
        rows.append({"minutes": bucket_label(low, high), "low": low, "high": None if math.isinf(high) else high,
                     "people": len(people), "found": found, "recall": ratio(found, len(people))})
    return rows


def overall_recall(outcome: Outcome) -> dict[str, Any]:
    """Recall of truly exposed people (worst day >= the threshold) and of truly exposed person-days."""
    threshold = outcome.settings.params.exposure_minutes
    exposures = outcome.exposures
    exposed_days = [(int(p), int(d)) for p, d, m in zip(exposures.person, exposures.day, exposures.close_minutes)
                    if m >= threshold]
    found_days = sum(1 for key in exposed_days if key in outcome.alerts)
    people = {p for p, _ in exposed_days}
    found_people = {p for p, d in exposed_days if (p, d) in outcome.alerts}
    delays = [outcome.alerts[key] - key[1] for key in exposed_days if key in outcome.alerts]
    return {
        "people": len(people),
        "people_found": len(found_people),
        "recall": ratio(len(found_people), len(people)),
        "person_days": len(exposed_days),
        "person_days_found": found_days,
        "recall_person_days": ratio(found_days, len(exposed_days)),
        "mean_days_to_alert": float(np.mean(delays)) if delays else None,
    }


def _summary(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        return {"mean": 0.0, "p95": 0.0, "max": 0.0}
    return {"mean": float(values.mean()), "p95": float(np.percentile(values, 95)), "max": float(values.max())}


def build_report(outcome: Outcome) -> dict[str, Any]:
    s, epidemic = outcome.settings, outcome.epidemic
    person_days = s.people * s.days
    alerts = classify_alerts(outcome)
    recall = overall_recall(outcome)
    batches = [d.batch for d in outcome.days if d.batch is not None]
    body_bytes = sum(b.body_bytes for b in batches)
    gaen_bytes = sum(b.gaen_export_bytes for b in batches)
    keys_published = sum(b.keys_published for b in batches)
    elements = sum(b.elements for b in batches)
    cases = sum(d.cases_published for d in outcome.days)
    downloaded = sum(d.bytes_downloaded for d in outcome.days)
    # Bytes per day are per morning phones synced: the run's, and any after it that published held keys.
    mornings = len(outcome.days)
    infected = epidemic.infected_day < NEVER
    diagnosed = epidemic.diagnosed_day < s.days
    unreported_exposed = _exposed_to_unreported(outcome)
    return {
        # --- the headline numbers ---
        "people": s.people,
        "days": s.days,
        "cases": cases,
        "recall": recall["recall"],
        "false_alarms_per_10k_person_days": per_10k(alerts.false, person_days),
        "filter_false_alarms_per_10k_person_days": per_10k(alerts.no_contact, person_days),
        "target_false_alarms_per_10k_person_days": TARGET_PER_10K_PERSON_DAYS,
        "bytes_per_case": ratio(body_bytes, cases),
        "gaen_bytes_per_case": ratio(gaen_bytes, cases),
        "bytes_per_phone_day": downloaded / (s.people * mornings),
        "batch_bytes_per_phone_day": body_bytes / mornings,
        "gaen_bytes_per_phone_day": gaen_bytes / mornings,
        # --- details ---
        "run": {
            "start": s.start.isoformat(), "seed": s.seed, "store": "redis" if (s.store or "").startswith(("redis", "unix"))
            else "sqlite", "workers": s.workers, "publish_interval_seconds": s.params.publish_interval_seconds,
            "mornings_after_the_run": sum(1 for d in outcome.days if d.after_the_run),
            "contact_intervals": s.params.contact_intervals,
        },
        "recall_detail": recall,
        "recall_by_duration": recall_by_duration(outcome),
        "alerts": {
            "total": len(outcome.alerts),
            "truly_exposed": alerts.true,
            "false": alerts.false,
            "shorter": alerts.shorter,
            "farther": alerts.farther,
            "no_contact": alerts.no_contact,
            "person_days": person_days,
            "target_scaled_to_run": FALSE_ALARMS_PER_PHONE_YEAR / DAYS_PER_YEAR * person_days,
            "by_morning": {str(m): dict(zip(ALERT_KINDS, v)) for m, v in alerts.by_morning.items()},
        },
        "epidemic": {
            "infected": int(infected.sum()),
            "infected_during_run": int(((epidemic.infected_day >= 0) & infected).sum()),
            "symptomatic": int((epidemic.symptomatic & infected).sum()),
            "diagnosed": int(diagnosed.sum()),
            "shared_with_code": int((diagnosed & (epidemic.upload == SHARED_WITH_CODE)).sum()),
            "pushed_by_authority": int((diagnosed & (epidemic.upload == PUSHED_BY_AUTHORITY)).sum()),
            "declined": int((diagnosed & (epidemic.upload == DECLINED)).sum()),
            "people_exposed_to_unreported_infections": unreported_exposed,
            "cases_uploaded": sum(d.cases_uploaded for d in outcome.days),
            "cases_held_at_end": len(outcome.held_at_end),
        },
        # Each batch has one section here (every key is a CONFIRMED_TEST one): its cases are the anonymity set of
        # every match in it. The service holds a morning of fewer than 5 cases for a day.
        "cases_per_batch": [d.cases_published for d in outcome.days if d.batch is not None and d.cases_published],
        "bandwidth": {
            "batches": len(batches),
            "keys_uploaded": sum(d.keys_accepted for d in outcome.days),
            "keys_published": keys_published,
            "elements": elements,
            "elements_per_case": ratio(elements, cases),
            "body_bytes": body_bytes,
            "bytes_per_element": ratio(body_bytes, elements),
            "gaen_export_bytes": gaen_bytes,
            "gaen_bytes_per_key": GAEN_BYTES_PER_KEY,
            "downloaded_bytes": downloaded,
            "by_morning": [{"morning": d.day + 1, "batch_bytes": d.batch.body_bytes if d.batch else 0,
                            "gaen_bytes": d.batch.gaen_export_bytes if d.batch else 0,
                            "downloaded_per_phone": d.bytes_downloaded / s.people} for d in outcome.days],
        },
        "time": {
            "publish_build_seconds": _summary([b.build_seconds for b in batches]),
            "publish_command_seconds": _summary([b.publish_command_seconds for b in batches]),
            "phone_sync_ms": _summary(outcome.sync_seconds.ravel() * 1000),
            "phone_check_ms": _summary(outcome.check_seconds.ravel() * 1000),
            "run_phase_seconds": {k: round(v, 2) for k, v in sorted(outcome.phase_seconds.items(), key=lambda x: -x[1])},
            "run_seconds": round(sum(outcome.phase_seconds.values()), 1),
        },
        "integrity": {
            "phones_refusing_a_batch": sum(d.phones_refusing for d in outcome.days),
            "downloads_interrupted": sum(d.downloads_interrupted for d in outcome.days),
        },
        "world": {
            "encounters_per_day": float(np.mean([d.encounters for d in outcome.days])),
            "sightings_per_phone_day": sum(d.sightings for d in outcome.days) / person_days,
        },
        "model": s.params.as_json(),
    }


def _exposed_to_unreported(outcome: Outcome) -> int:
    """People with a day of >= the threshold of close minutes with infectious people whose keys never reached the
    server (never diagnosed, or declined): nobody can warn them, by design."""
    epidemic = outcome.epidemic
    unreported = (epidemic.infected_day < NEVER) & ~epidemic.reported(outcome.settings.days)
    exposures = exposures_of(outcome.contacts, unreported)
    return len(set(exposures.person[exposures.close_minutes >= outcome.settings.params.exposure_minutes].tolist()))


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
