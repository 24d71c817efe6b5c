"""Risk scoring of matched sightings with the signed exposure configuration, in the manner of GAEN's
ExposureWindow scoring.

- A window is everything heard from one matched RPI. A filter batch cannot say which RPIs belong to the same
  person (that is the point of it), so windows never span identifiers.
- A sighting counts for the seconds since the phone's previous scan (GAEN's secondsSinceLastScan), at most
  ``sighting_credit_cap_seconds``; a window counts for at most one interval (10 minutes), because an identifier
  is only broadcast for one interval. So one matched interval alone can never reach the default 15-minute
  threshold.
- Attenuation = TX power - RSSI, bucketed by the configuration's thresholds and weighted. The TX power is the one
  published for the filter's class when the case's phone stated it, else the configuration's assumption.
- A window's weighted minutes are multiplied by the report-type and infectiousness weights of the filter it
  matched; a UTC day alerts when its weighted minutes reach ``minimum_weighted_minutes_per_day``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np

from exposure.v1 import batch_pb2, config_pb2
from matcher.exposure_config import MAX_MINUTES_PER_OBSERVATION, infectiousness_weight, report_type_weight
from matcher.intervals import days_of
from matcher.model import Infectiousness, ReportType

from .matching import header_of
from .store import PhoneStore

EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class DayRisk:
    day: str  # YYYY-MM-DD (UTC)
    matched_intervals: int
    minutes: float
    score: float
    alert: bool

    def as_json(self) -> dict:
        return asdict(self)


def sighting_credit(times: np.ndarray, scan_times: np.ndarray, cap_seconds: int) -> np.ndarray:
    """Seconds each sighting counts for: the time since the phone's previous scan, at most ``cap_seconds``."""
    position = np.searchsorted(scan_times, times)  # index of this scan in the schedule
    previous = np.where(position > 0, scan_times[np.maximum(position - 1, 0)], times - cap_seconds)
    return np.minimum(times - previous, cap_seconds).astype(np.float64)


def attenuation_weights(attenuation: np.ndarray, config: config_pb2.ExposureConfig) -> np.ndarray:
    bucket = np.searchsorted(np.array(config.attenuation_thresholds_db), attenuation, side="left")
    return np.array(config.attenuation_weights, dtype=np.float64)[bucket]


def score(store: PhoneStore, config: config_pb2.ExposureConfig) -> list[DayRisk]:
    """The exposure risk of every day with a match, oldest first."""
    rows = store.matches()
    if not rows:
        return []
    headers = {sequence: header_of(signed) for sequence, signed, *_ in store.batches()}
    # The class of each matched sighting: the filter it matched (the first batch that matched it wins).
    filter_of: dict[int, batch_pb2.FilterInfo] = {}
    for sighting_id, sequence, index in rows:
        if sighting_id not in filter_of and sequence in headers:
            filter_of[sighting_id] = headers[sequence].filters[index]
    sightings = store.sightings_by_id(filter_of)
    infos = [filter_of[i] for i in sightings.ids.tolist()]

    credit = sighting_credit(sightings.times, store.scan_times(), config.sighting_credit_cap_seconds)
    tx_power = np.array(
        [i.tx_power_dbm if i.HasField("tx_power_dbm") else config.tx_power_dbm_when_unknown for i in infos],
        dtype=np.float64,
    )
    weighted_seconds = credit * attenuation_weights(tx_power - sightings.rssi, config)
    class_weight = np.array(
        [report_type_weight(config, ReportType(i.report_type)) * infectiousness_weight(config, Infectiousness(i.infectiousness))
         for i in infos]
    )

    # Windows: one per matched RPI. Cap each at one interval, scaling its weighted time in proportion.
    _, window = np.unique(sightings.rpis, axis=0, return_inverse=True)
    window = window.reshape(-1)
    windows = int(window.max()) + 1
    seconds = np.bincount(window, weights=credit, minlength=windows)
    weighted = np.bincount(window, weights=weighted_seconds, minlength=windows)
    scale = np.minimum(1.0, MAX_MINUTES_PER_OBSERVATION * 60 / np.maximum(seconds, 1e-9))
    weight = np.zeros(windows)
    np.maximum.at(weight, window, class_weight)
    first_interval = np.full(windows, np.iinfo(np.int64).max)
    np.minimum.at(first_interval, window, sightings.intervals)
    window_day = days_of(first_interval)
    minutes_by_day = np.bincount(window_day - window_day.min(), weights=seconds * scale / 60)
    score_by_day = np.bincount(window_day - window_day.min(), weights=weighted * scale / 60 * weight)

    distinct = np.unique(np.column_stack([window, sightings.intervals]), axis=0)
    intervals_by_day = np.bincount(days_of(distinct[:, 1]) - window_day.min(), minlength=len(minutes_by_day))
    threshold = config.minimum_weighted_minutes_per_day
    return [
        DayRisk(
            day=(EPOCH + dt.timedelta(days=int(window_day.min() + offset))).isoformat(),
            matched_intervals=int(intervals_by_day[offset]),
            minutes=round(float(minutes_by_day[offset]), 2),
            score=round(float(score_by_day[offset]), 2),
            alert=bool(score_by_day[offset] >= threshold),
        )
        for offset in np.flatnonzero(minutes_by_day > 0)
    ]
