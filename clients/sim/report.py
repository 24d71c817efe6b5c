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
- Two tiers. F1 (near a case) is what the above says, with the days a phone alerted for at F1: an F1 alert wins
  the day over an F2 one, and an F2 alert on a truly F1-exposed day is a warning at the lower tier, counted apart,
  not found. F2 (near a case's contact who shared): a person-day is **truly F2-exposed** when its close minutes
  with truly F1-exposed contacts who shared, from their exposure on, reach the threshold and it is not truly
  F1-exposed; it is found when the phone alerted for it at either tier (an F1 alert asks more of the person than
  an F2 one). An F2 false alarm is an F2 alert for a day neither truly F2- nor F1-exposed, in four kinds: shorter
  or farther (as above, with contacts who shared that day's key), after a close contact with a contact who was
  not truly exposed (their own F1 alert was one of the false alarms above, or the contact came before their
  exposure), and with no contact with any contact who shared (a filter false positive).
"""

from __future__ import annotations

import json
import math
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matcher.fprate import DAYS_PER_YEAR, FALSE_ALARMS_PER_PHONE_YEAR, GAEN_BYTES_PER_KEY

from .epidemic import DECLINED, NEVER, PUSHED_BY_AUTHORITY, SHARED_WITH_CODE
from .report_venues import venue_report
from .run import Outcome
from .truth import Exposures, exposures_of

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
    by_morning: dict[int, tuple[int, ...]]  # morning -> new alerts of each kind (4), in ALERT_KINDS order

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
    true, shorter, farther, no_contact = counts
    return AlertKinds(
        true, shorter, farther, no_contact, by_morning={m: tuple(v) for m, v in sorted(by_morning.items())}
    )


def recall_by_duration(outcome: Outcome) -> list[dict[str, Any]]:
    """Per bucket of a person's worst-day close minutes with cases: people, found (an F1 alert that day), recall,
    and ``only_contact_keys``: people whose worst day only keys their case had shared as a contact could warn (the
    service keeps a key's first upload, so those were published at F2 only)."""
    return _by_duration(outcome.exposures, outcome.alerts, set(), outcome.f1_days_only_contact_keys)


def _by_duration(
    exposures: Exposures,
    alerted: Container[tuple[int, int]],
    excluded: set[tuple[int, int]],
    only_contact_keys: Container[tuple[int, int]] = frozenset(),
) -> list[dict[str, Any]]:
    """Per bucket of a person's worst-day close minutes (leaving out the ``excluded`` days): people, found (their
    worst day is in ``alerted``), recall."""
    worst: dict[int, int] = {}
    for row, (person, day) in enumerate(zip(exposures.person.tolist(), exposures.day.tolist())):
        if (person, day) in excluded:
            continue
        if person not in worst or exposures.close_minutes[row] > exposures.close_minutes[worst[person]]:
            worst[person] = row
    rows = []
    for low, high in DURATION_BUCKETS:
        people = [person for person, row in worst.items() if low <= exposures.close_minutes[row] < high]
        days = [(person, int(exposures.day[worst[person]])) for person in people]
        found = sum(1 for key in days if key in alerted)
        rows.append(
            {
                "minutes": bucket_label(low, high),
                "low": low,
                "high": None if math.isinf(high) else high,
                "people": len(people),
                "found": found,
                "recall": ratio(found, len(people)),
                "only_contact_keys": sum(1 for key in days if key in only_contact_keys),
            }
        )
    return rows


def overall_recall(outcome: Outcome) -> dict[str, Any]:
    """Recall of truly exposed people (worst day >= the threshold) and of truly exposed person-days."""
    threshold = outcome.settings.params.exposure_minutes
    exposures = outcome.exposures
    exposed_days = [
        (int(p), int(d)) for p, d, m in zip(exposures.person, exposures.day, exposures.close_minutes) if m >= threshold
    ]
    found_days = sum(1 for key in exposed_days if key in outcome.alerts)
    people = {p for p, _ in exposed_days}
    found_people = {p for p, d in exposed_days if (p, d) in outcome.alerts}
    delays = [outcome.alerts[key] - key[1] for key in exposed_days if key in outcome.alerts]
    # People none of whose exposed days had a case's key published as a case's: their cases had shared those days
    # as contacts first, and the service keeps a key's first upload (it was published at F2 only).
    only_contact_keys = people - {p for p, d in exposed_days if (p, d) not in outcome.f1_days_only_contact_keys}
    return {
        "people": len(people),
        "people_found": len(found_people),
        "recall": ratio(len(found_people), len(people)),
        "people_only_contact_keys": len(only_contact_keys),
        "people_found_with_case_keys": len(found_people - only_contact_keys),
        "recall_with_case_keys": ratio(len(found_people - only_contact_keys), len(people - only_contact_keys)),
        "person_days": len(exposed_days),
        "person_days_found": found_days,
        "recall_person_days": ratio(found_days, len(exposed_days)),
        "mean_days_to_alert": float(np.mean(delays)) if delays else None,
    }


F2_ALERT_KINDS = ("true", "f1_day", "shorter", "farther", "untrue_source", "no_contact")


@dataclass(frozen=True)
class F2AlertKinds:
    """Every person-day a phone alerted for at F2 (and never at F1), by what the truth says about it."""

    true: int  # truly F2-exposed
    f1_day: int  # truly F1-exposed: warned, at the lower tier (not a false alarm; F1 recall misses it)
    shorter: int  # less than the threshold with contacts who shared that day's key, at any distance
    farther: int  # the threshold or longer with them, but not at close range
    untrue_source: int  # close, with contacts who shared but were not truly exposed (or before their exposure)
    no_contact: int  # no contact with anyone who shared that day's key: a filter false positive
    by_morning: dict[int, tuple[int, ...]]  # morning -> new alerts of each kind, in F2_ALERT_KINDS order

    @property
    def false(self) -> int:
        return self.shorter + self.farther + self.untrue_source + self.no_contact


def truly_f2_exposed(outcome: Outcome) -> set[tuple[int, int]]:
    """The truly F2-exposed person-days: close minutes with truly F1-exposed contacts who shared reach the
    threshold, and the day is not truly F1-exposed."""
    threshold = outcome.settings.params.exposure_minutes
    return outcome.f2_exposures.exposed(threshold) - outcome.exposures.exposed(threshold)


def f2_alert_days(outcome: Outcome) -> dict[tuple[int, int], int]:
    """The days a phone alerted for at F2 and never at F1 (F1 wins the day), with the morning first seen."""
    return {key: morning for key, morning in outcome.f2_alerts.items() if key not in outcome.alerts}


def classify_f2_alerts(outcome: Outcome) -> F2AlertKinds:
    threshold = outcome.settings.params.exposure_minutes
    true_f1, true_f2 = outcome.exposures.exposed(threshold), truly_f2_exposed(outcome)
    minutes = outcome.f2_contact_minutes
    index = minutes.lookup()
    counts = [0] * len(F2_ALERT_KINDS)
    by_morning: dict[int, list[int]] = {}
    for key, morning in f2_alert_days(outcome).items():
        row = index.get(key)
        if key in true_f2:
            kind = 0
        elif key in true_f1:
            kind = 1
        elif row is None or minutes.any_minutes[row] == 0:
            kind = 5
        elif minutes.any_minutes[row] < threshold:
            kind = 2
        elif minutes.close_minutes[row] < threshold:
            kind = 3
        else:
            kind = 4
        counts[kind] += 1
        by_morning.setdefault(morning, [0] * len(F2_ALERT_KINDS))[kind] += 1
    true, f1_day, shorter, farther, untrue_source, no_contact = counts
    return F2AlertKinds(
        true,
        f1_day,
        shorter,
        farther,
        untrue_source,
        no_contact,
        by_morning={m: tuple(v) for m, v in sorted(by_morning.items())},
    )


def f2_recall(outcome: Outcome) -> dict[str, Any]:
    """Recall of truly F2-exposed people (their worst such day) and person-days: found when the phone alerted for
    the day at either tier; ``*_found_at_f2`` counts those it alerted for at F2."""
    true_f2 = truly_f2_exposed(outcome)
    exposures = outcome.f2_exposures
    index = exposures.lookup()
    first = {
        key: min(m for m in (outcome.alerts.get(key), outcome.f2_alerts.get(key)) if m is not None)
        for key in true_f2
        if key in outcome.alerts or key in outcome.f2_alerts
    }
    worst: dict[int, tuple[int, int]] = {}
    for person, day in sorted(true_f2):
        if (
            person not in worst
            or exposures.close_minutes[index[(person, day)]] > exposures.close_minutes[index[worst[person]]]
        ):
            worst[person] = (person, day)
    at_f2 = f2_alert_days(outcome)
    delays = [morning - day for (_, day), morning in first.items()]
    return {
        "people": len(worst),
        "people_found": sum(1 for key in worst.values() if key in first),
        "people_found_at_f2": sum(1 for key in worst.values() if key in at_f2),
        "recall": ratio(sum(1 for key in worst.values() if key in first), len(worst)),
        "person_days": len(true_f2),
        "person_days_found": len(first),
        "person_days_found_at_f2": sum(1 for key in true_f2 if key in at_f2),
        "recall_person_days": ratio(len(first), len(true_f2)),
        "mean_days_to_alert": float(np.mean(delays)) if delays else None,
    }


def f2_recall_by_duration(outcome: Outcome) -> list[dict[str, Any]]:
    """Per bucket of a person's worst-day close minutes with truly exposed contacts who shared (days not truly
    F1-exposed): people, found (an alert that day at either tier), recall. The phone's F2 threshold is 30
    weighted minutes: the 15-30 bucket shows what it leaves out."""
    threshold = outcome.settings.params.exposure_minutes
    alerted = outcome.alerts.keys() | outcome.f2_alerts.keys()
    return _by_duration(outcome.f2_exposures, alerted, outcome.exposures.exposed(threshold))


def contacts_summary(outcome: Outcome) -> dict[str, Any]:
    """Who shared as a case's contact, and the checks that only F1-alerted phones were asked."""
    days = outcome.days
    shares = outcome.contact_shares
    without_f1 = [
        person
        for person, (morning, _, _) in shares.items()
        if not any(p == person and first <= morning for (p, _), first in outcome.alerts.items())
    ]
    keys_sent = [len(sent) for _, _, sent in shares.values()]
    return {
        "designated_f1": sum(d.designated_f1 for d in days),
        "shared": sum(d.contacts_shared for d in days),
        "declined": sum(d.designated_f1 - d.contacts_shared for d in days),
        "keys_accepted": sum(d.contact_keys_accepted for d in days),
        # Days of keys a contact shared: from the exposure its alert dated to the day before it shared.
        "mean_days_shared": float(np.mean(keys_sent)) if keys_sent else None,
        # Both must be 0: the simulation asks only people whose phone alerted at F1, and the phone sends only the
        # days from the exposure its alert dates (the run stops if a phone refuses or sends an earlier day).
        "shared_without_an_f1_alert": len(without_f1),
        "keys_before_exposure_day": sum(1 for _, e, sent in shares.values() for d in sent if d < e),
        "published": sum(d.contacts_published for d in days),
        # Cases who had shared as contacts before their diagnosis: their keys of those days are published as a
        # contact's only (the service keeps a key's first upload), which F1 recall pays for.
        "case_keys_shared_as_contact_before": sum(d.case_keys_shared_as_contact for d in days),
        "f1_person_days_only_contact_keys": len(outcome.f1_days_only_contact_keys),
    }


def _summary(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        return {"mean": 0.0, "p95": 0.0, "max": 0.0}
    return {"mean": float(values.mean()), "p95": float(np.percentile(values, 95)), "max": float(values.max())}


def build_report(outcome: Outcome) -> dict[str, Any]:
    s, epidemic = outcome.settings, outcome.epidemic
    person_days = s.people * s.days
    alerts = classify_alerts(outcome)
    recall = overall_recall(outcome)
    f2_alerts = classify_f2_alerts(outcome)
    recall_f2 = f2_recall(outcome)
    batches = [d.batch for d in outcome.days if d.batch is not None]
    body_bytes = sum(b.body_bytes for b in batches)
    gaen_bytes = sum(b.gaen_export_bytes for b in batches)
    keys_published = sum(b.keys_published for b in batches)
    elements = sum(b.elements for b in batches)
    cases = sum(d.cases_published for d in outcome.days)
    downloaded = sum(d.bytes_downloaded for d in outcome.days)
    # The tiers apart: the cases' sections and the RECURSIVE ones (from the signed headers). Without F2 publication
    # the batches would be the cases' sections: the bytes of the RECURSIVE sections are what F2 costs (and a little
    # more, case_bytes_for_sharing_budget: the cases' sections' share of the false-positive budget shrinks).
    contact_bytes = sum(b.contact_bytes for b in batches)
    venue_bytes = sum(b.venue_bytes for b in batches)
    case_bytes = body_bytes - contact_bytes - venue_bytes
    venues = venue_report(outcome)
    contact_keys = sum(b.contact_keys_published for b in batches)
    case_keys = keys_published - contact_keys
    case_elements = sum(b.case_elements for b in batches)
    contact_elements = sum(b.contact_elements for b in batches)
    gaen_case_bytes = sum(b.gaen_export_bytes_cases for b in batches)
    contacts = contacts_summary(outcome)
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
        "bytes_per_case": ratio(case_bytes, cases),
        "gaen_bytes_per_case": ratio(gaen_case_bytes, cases),
        "bytes_per_phone_day": downloaded / (s.people * mornings),
        "batch_bytes_per_phone_day": body_bytes / mornings,
        "gaen_bytes_per_phone_day": gaen_bytes / mornings,
        # F2: contacts of cases who shared, and their contacts warned.
        "recall_f2": recall_f2["recall"],
        "false_alarms_f2_per_10k_person_days": per_10k(f2_alerts.false, person_days),
        "batch_bytes_per_phone_day_without_f2": (body_bytes - contact_bytes) / mornings,
        # Venues: check-ins against the truth of shared air, next to Bluetooth's recall of the same people.
        "venue_recall": venues["recall"],
        "venue_bluetooth_recall": venues["bluetooth_recall"],
        "bytes_per_phone_day_without_f2": (downloaded - s.people * contact_bytes) / (s.people * mornings),
        # --- details ---
        "run": {
            "start": s.start.isoformat(),
            "seed": s.seed,
            "store": "redis" if (s.store or "").startswith(("redis", "unix")) else "sqlite",
            "workers": s.workers,
            "publish_interval_seconds": s.params.publish_interval_seconds,
            "mornings_after_the_run": sum(1 for d in outcome.days if d.after_the_run),
            "contact_intervals": s.params.contact_intervals,
            "contact_share": s.params.contact_share,
        },
        "recall_detail": recall,
        "recall_by_duration": recall_by_duration(outcome),
        "recall_f2_detail": recall_f2,
        "recall_f2_by_duration": f2_recall_by_duration(outcome),
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
            # Truly exposed days the phone alerted for at F2 only: warned, at the lower tier; F1 recall misses them.
            "truly_exposed_warned_at_f2_only": f2_alerts.f1_day,
        },
        "alerts_f2": {
            "total": len(f2_alert_days(outcome)),
            "truly_f2_exposed": f2_alerts.true,
            "truly_f1_exposed": f2_alerts.f1_day,
            "false": f2_alerts.false,
            "shorter": f2_alerts.shorter,
            "farther": f2_alerts.farther,
            "untrue_source": f2_alerts.untrue_source,
            "no_contact": f2_alerts.no_contact,
            "by_morning": {str(m): dict(zip(F2_ALERT_KINDS, v)) for m, v in f2_alerts.by_morning.items()},
        },
        "contacts": contacts,
        "venues": venues,
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
            "elements_per_case": ratio(case_elements, cases),
            "body_bytes": body_bytes,
            "bytes_per_element": ratio(body_bytes, elements),
            "gaen_export_bytes": gaen_bytes,
            "gaen_bytes_per_key": GAEN_BYTES_PER_KEY,
            "downloaded_bytes": downloaded,
            # Cases (F1) against their contacts (RECURSIVE, F2): keys, elements (distinct hashes in the sections)
            # and bytes; the multipliers say how much publishing contacts multiplies what is published a day.
            "case_keys_published": case_keys,
            "contact_keys_published": contact_keys,
            "case_elements": case_elements,
            "contact_elements": contact_elements,
            "case_bytes": case_bytes,
            "venue_bytes": venue_bytes,
            "contact_bytes": contact_bytes,
            "contacts_published": contacts["published"],
            "elements_per_contact": ratio(contact_elements, contacts["published"]),
            "bytes_per_contact": ratio(contact_bytes, contacts["published"]),
            "keys_multiplier": ratio(keys_published, case_keys),
            "elements_multiplier": ratio(case_elements + contact_elements, case_elements),
            "bytes_multiplier": ratio(case_bytes + contact_bytes, case_bytes),
            "case_bytes_for_sharing_budget": round(sum(b.case_bytes_for_sharing_budget for b in batches), 1),
            "gaen_export_bytes_cases": gaen_case_bytes,
            "gaen_bytes_per_phone_day_without_f2": gaen_case_bytes / mornings,
            "by_morning": [
                {
                    "morning": d.day + 1,
                    "batch_bytes": d.batch.body_bytes if d.batch else 0,
                    "contact_bytes": d.batch.contact_bytes if d.batch else 0,
                    "gaen_bytes": d.batch.gaen_export_bytes if d.batch else 0,
                    "downloaded_per_phone": d.bytes_downloaded / s.people,
                }
                for d in outcome.days
            ],
        },
        "time": {
            "publish_build_seconds": _summary([b.build_seconds for b in batches]),
            "publish_command_seconds": _summary([b.publish_command_seconds for b in batches]),
            "phone_sync_ms": _summary(outcome.sync_seconds.ravel() * 1000),
            "phone_check_ms": _summary(outcome.check_seconds.ravel() * 1000),
            "run_phase_seconds": {
                k: round(v, 2) for k, v in sorted(outcome.phase_seconds.items(), key=lambda x: -x[1])
            },
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
