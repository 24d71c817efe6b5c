"""Risk scoring of matched sightings with the signed exposure configuration, in the manner of GAEN's
ExposureWindow scoring, under the alarm rule of docs/spec.md ("Alarm rule").

- A window is everything heard from one matched RPI. A batch cannot say which RPIs belong to the same person
  (that is the point of it), so windows never span identifiers.
- A window **counts** only when it is coherent: another window matched in the same section of the same batch at
  an interval 1 .. W-1 away (W = COHERENCE_INTERVALS, one hour). A real exposure of 15 minutes spans two
  neighbouring intervals of one case's key, so it always has such a pair; false positives almost never do, and
  the batches are sized for exactly that (matcher/fprate.py).
- A sighting counts for the seconds since the phone's previous scan (GAEN's secondsSinceLastScan), at most
  ``sighting_credit_cap_seconds``; a window counts for at most one interval (10 minutes), because an identifier
  is only broadcast for one interval. So one matched interval alone can never alert, whatever the configuration.
- Attenuation = TX power - RSSI, bucketed by the configuration's thresholds and weighted. Batches do not carry
  the case's TX power, so it is the configuration's ``tx_power_dbm_when_unknown``.
- A window's weighted minutes are multiplied by the largest report-type and infectiousness weights of the section
  it matched; a UTC day alerts when the weighted minutes of its counted windows reach
  ``minimum_weighted_minutes_per_day``.
- Two tiers, each scored alone: windows in a section of cases' keys are F1 exposures (near a case), windows in a
  RECURSIVE section are F2 (near a case's contact), which alert at ``minimum_weighted_minutes_per_day_recursive``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from exposure.v1 import batch_pb2, config_pb2
from matcher.batches import LoadedSection, match_venue_hours
from matcher.exposure_config import (
    COHERENCE_INTERVALS,
    MAX_MINUTES_PER_OBSERVATION,
    alert_threshold,
    attenuation_weights,
    infectiousness_weight,
    report_type_weight,
)
from matcher.filters import decode_set
from matcher.intervals import days_of
from matcher.model import ExposureLevel, Infectiousness, ReportType, level_of
from matcher.venues import HOUR_SECONDS, hour_identifiers

from .matching import header_of
from .store import PhoneStore

EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class DayRisk:
    """A day's Bluetooth result."""

    day: str  # YYYY-MM-DD (UTC)
    level: str  # "F1": near a case; "F2": near a case's contact. The numbers below are that tier's.
    matched_intervals: int  # every matched (RPI, interval) of the day
    counted_intervals: int  # those in coherent windows, which the minutes and the score count
    minutes: float
    score: float
    alert: bool

    def as_json(self) -> dict[str, Any]:
        return {"kind": "proximity", **asdict(self)}


@dataclass(frozen=True)
class VenueRisk:
    """A check-in's result: the minutes by which it overlapped warned hours of its venue (docs/spec.md, "Venues")."""

    day: str  # YYYY-MM-DD (UTC) of the entry
    venue: str  # the name its QR code gave
    minutes: float
    alert: bool

    def as_json(self) -> dict[str, Any]:
        return {"kind": "venue", **asdict(self)}


def sighting_credit(times: NDArray[np.int64], scan_times: NDArray[np.int64], cap_seconds: int) -> NDArray[np.float64]:
    """Seconds each sighting counts for: the time since the phone's previous scan, at most ``cap_seconds``."""
    position = np.searchsorted(scan_times, times)  # index of this scan in the schedule
    previous = np.where(position > 0, scan_times[np.maximum(position - 1, 0)], times - cap_seconds)
    return np.minimum(times - previous, cap_seconds).astype(np.float64)


def section_weight(info: batch_pb2.Section, config: config_pb2.ExposureConfig) -> float:
    """The weight of a match in this section: the largest report-type and infectiousness weights it covers (a
    section covers several classes only when the configuration in force at publication weighed them alike)."""
    report = max(report_type_weight(config, ReportType(r)) for r in info.report_types)
    infectious = max(infectiousness_weight(config, Infectiousness(i)) for i in info.infectiousness)
    return report * infectious


def section_level(info: batch_pb2.Section) -> ExposureLevel:
    """The tier of a match in this section: sections never mix cases' report types with RECURSIVE."""
    return level_of(info.report_types[0])


def coherent(group: NDArray[np.integer], interval: NDArray[np.integer]) -> NDArray[np.bool_]:
    """Which windows have another window of the same group (batch and section) whose matched interval is
    1 .. COHERENCE_INTERVALS - 1 away: ``(n,)`` bool."""
    # One sortable key per window: the group in the high bits, the interval (< 2^32) in the low ones.
    key = group.astype(np.int64) << 32 | interval.astype(np.int64)
    ordered = np.unique(key)
    last = len(ordered) - 1
    below = ordered[np.maximum(np.searchsorted(ordered, key, side="left") - 1, 0)]
    above = ordered[np.minimum(np.searchsorted(ordered, key, side="right"), last)]
    near: NDArray[np.bool_] = (
        (key - below >= 1) & (key - below < COHERENCE_INTERVALS) & (below >> 32 == key >> 32)
    ) | ((above - key >= 1) & (above - key < COHERENCE_INTERVALS) & (above >> 32 == key >> 32))
    return near


def score(store: PhoneStore, config: config_pb2.ExposureConfig) -> list[DayRisk]:
    """The exposure risk of every day with a match, oldest first: the day's F1 result (near a case) when it
    alerts at F1 or has no F2 match, else its F2 result (near a case's contact). Each tier counts only its own
    windows against its own threshold, so an F2 match never raises an F1 alert, and an F1 alert wins the day."""
    rows = store.matches()
    if not rows:
        return []
    headers = {kept.sequence: header_of(kept.signed_header) for kept in store.batches()}
    # Each matched sighting's batch, section and matched interval (the first batch that matched it wins).
    matched: dict[int, tuple[int, int, int]] = {}
    for sighting_id, sequence, section, interval in rows:
        if sighting_id not in matched and sequence in headers:
            matched[sighting_id] = (sequence, section, interval)
    sightings = store.sightings_by_id(matched)
    found = np.array([matched[i] for i in sightings.ids.tolist()], dtype=np.int64).reshape(-1, 3)
    sections = {
        (sequence, index): info for sequence, header in headers.items() for index, info in enumerate(header.sections)
    }
    class_weight = np.array(
        [section_weight(sections[sequence, section], config) for sequence, section, _ in found.tolist()]
    )

    credit = sighting_credit(sightings.times, store.scan_times(), config.sighting_credit_cap_seconds)
    attenuation = config.tx_power_dbm_when_unknown - sightings.rssi.astype(np.float64)
    weighted_seconds = credit * attenuation_weights(attenuation, config)

    # Windows: one per matched RPI. Cap each at one interval, scaling its weighted time in proportion.
    _, first_sighting, window = np.unique(sightings.rpis, axis=0, return_index=True, return_inverse=True)
    window = window.reshape(-1)
    windows = len(first_sighting)
    seconds = np.bincount(window, weights=credit, minlength=windows)
    weighted = np.bincount(window, weights=weighted_seconds, minlength=windows)
    scale = np.minimum(1.0, MAX_MINUTES_PER_OBSERVATION * 60 / np.maximum(seconds, 1e-9))
    weight = np.zeros(windows)
    np.maximum.at(weight, window, class_weight)
    where = found[first_sighting]  # each window's batch, section and matched interval
    _, group = np.unique(where[:, :2], axis=0, return_inverse=True)  # (batch, section) -> 0, 1, ...
    counts = coherent(group.reshape(-1), where[:, 2]).astype(np.float64)
    level = np.array([section_level(sections[sequence, section]) for sequence, section, _ in where.tolist()])
    first_interval = np.full(windows, np.iinfo(np.int64).max)
    np.minimum.at(first_interval, window, sightings.intervals)
    window_day = days_of(first_interval)
    offset = window_day - window_day.min()
    days = int(offset.max()) + 1
    distinct = np.unique(np.column_stack([window, sightings.intervals]), axis=0)
    distinct_day = np.clip(days_of(distinct[:, 1]) - window_day.min(), 0, days - 1)

    def tier(wanted: ExposureLevel) -> dict[str, np.ndarray]:
        """The day-by-day sums of one tier's windows."""
        mine = (level == wanted).astype(np.float64)
        return {
            "windows": np.bincount(offset, weights=mine, minlength=days),
            "minutes": np.bincount(offset, weights=seconds * scale / 60 * counts * mine, minlength=days),
            "score": np.bincount(offset, weights=weighted * scale / 60 * weight * counts * mine, minlength=days),
            "intervals": np.bincount(distinct_day, weights=mine[distinct[:, 0]], minlength=days),
            "counted": np.bincount(distinct_day, weights=(counts * mine)[distinct[:, 0]], minlength=days),
        }

    tiers = {wanted: tier(wanted) for wanted in ExposureLevel}
    results = []
    for day in np.flatnonzero(np.bincount(offset, minlength=days)):
        alerts = {wanted: bool(t["score"][day] >= alert_threshold(config, wanted)) for wanted, t in tiers.items()}
        chosen = next((wanted for wanted in ExposureLevel if alerts[wanted]), None)
        if chosen is None:
            chosen = ExposureLevel.F1 if tiers[ExposureLevel.F1]["windows"][day] else ExposureLevel.F2
        sums = tiers[chosen]
        results.append(
            DayRisk(
                day=(EPOCH + dt.timedelta(days=int(window_day.min() + day))).isoformat(),
                level=chosen.name,
                matched_intervals=int(sums["intervals"][day]),
                counted_intervals=int(sums["counted"][day]),
                minutes=round(float(sums["minutes"][day]), 2),
                score=round(float(sums["score"][day]), 2),
                alert=alerts[chosen],
            )
        )
    return results


def venue_risks(store: PhoneStore, config: config_pb2.ExposureConfig) -> list[VenueRisk]:
    """Every check-in that overlapped a warned hour of its venue, oldest first; it alerts when the overlap reaches
    ``minimum_venue_overlap_minutes``. Check-ins are few: they are tested against every kept batch's venue section
    afresh at each check (only that section is decoded)."""
    checkins = store.checkins()
    if not checkins:
        return []
    spans = [np.arange(visit.entry // HOUR_SECONDS, -(-visit.exit // HOUR_SECONDS)) for visit in checkins]
    hours = np.concatenate(spans)
    rows = np.repeat(np.arange(len(checkins)), [len(span) for span in spans])
    identifiers = np.concatenate([hour_identifiers(visit.venue_id, span) for visit, span in zip(checkins, spans)])
    warned = np.zeros(len(hours), dtype=bool)
    for kept in store.batches():
        header = header_of(kept.signed_header)
        for info in header.sections:
            if info.kind == batch_pb2.SECTION_KIND_VENUE:  # verified at sync: decode this section only
                data = kept.body[info.offset : info.offset + info.length]
                values = decode_set(data, info.count, info.rice_parameter, info.quotient_bytes, info.hash_range)
                warned |= match_venue_hours(header, [LoadedSection(info, values)], identifiers, hours)
    entry = np.array([visit.entry for visit in checkins], dtype=np.int64)[rows]
    exit_ = np.array([visit.exit for visit in checkins], dtype=np.int64)[rows]
    overlap = np.minimum(exit_, (hours + 1) * HOUR_SECONDS) - np.maximum(entry, hours * HOUR_SECONDS)
    minutes = np.bincount(rows, weights=np.where(warned, overlap, 0) / 60, minlength=len(checkins))
    found = np.bincount(rows, weights=warned, minlength=len(checkins)) > 0
    return [
        VenueRisk(
            day=(EPOCH + dt.timedelta(days=checkins[row].entry // 86400)).isoformat(),
            venue=checkins[row].name,
            minutes=round(float(minutes[row]), 2),
            alert=bool(minutes[row] >= config.minimum_venue_overlap_minutes),
        )
        for row in np.flatnonzero(found)
    ]
