"""What the phones' scanners record during encounters: one sighting per scan of each phone in range.

- Every phone scans every ``scan_period_seconds`` (5 minutes) at its own phase, all day; during an encounter each
  of the two phones records the other at each of its scans (so a 15-minute encounter is exactly 3 scans).
- Attenuation follows a log-distance path-loss model: ``A = A(1 m) + 10 n log10(d) + X_e + X_s`` with a
  per-encounter offset ``X_e`` (body, pocket, orientation) and per-sighting fading ``X_s``, both Gaussian in dB.
- The scanner reports ``RSSI = TX power of the advertiser - A`` (GAEN's attenuation is TX power - RSSI, with the
  receiver's RSSI calibrated), rounded to a whole dBm; advertisements under the sensitivity are not heard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .encounters import Encounters
from .params import Params
from .population import Population


@dataclass(frozen=True)
class Sightings:
    """Sorted by observer, then time; at most one per (observer, subject, scan)."""

    observer: np.ndarray  # (n,) the phone that heard
    subject: np.ndarray  # (n,) the phone that was heard
    time: np.ndarray  # (n,) unix seconds of the scan
    rssi: np.ndarray  # (n,) dBm
    encounter: np.ndarray  # (n,) index of the encounter it comes from

    def __len__(self) -> int:
        return len(self.observer)


def attenuation_db(distance_m: np.ndarray, params: Params) -> np.ndarray:
    """The median attenuation at ``distance_m``, before fading."""
    median: np.ndarray = params.path_loss_at_1m_db + 10 * params.path_loss_exponent * np.log10(distance_m)
    return median


def scan_counts(start: np.ndarray, end: np.ndarray, phase: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    """For each span ``[start, end)``: the first scan number ``k`` (scan at ``phase + k*period``) inside it, and
    how many scans fall inside it."""
    first = -((phase - start) // period)  # ceil((start - phase) / period)
    after = -((phase - end) // period)  # first scan at or after the end
    return first, np.maximum(after - first, 0)


def scan(encounters: Encounters, pop: Population, params: Params, rng: np.random.Generator) -> Sightings:
    n = len(encounters)
    observer = np.concatenate([encounters.a, encounters.b])
    subject = np.concatenate([encounters.b, encounters.a])
    index = np.concatenate([np.arange(n), np.arange(n)])
    period = params.scan_period_seconds
    phase = pop.scan_phase[observer]
    first, count = scan_counts(encounters.start[index], encounters.end[index], phase, period)

    row = np.repeat(np.arange(len(observer)), count)
    within = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
    time = phase[row] + (first[row] + within) * period
    per_encounter = rng.normal(0.0, params.encounter_sigma_db, n)
    attenuation = (
        attenuation_db(encounters.distance[index[row]], params)
        + per_encounter[index[row]]
        + rng.normal(0.0, params.sighting_sigma_db, len(row))
    )
    rssi = np.clip(np.rint(pop.tx_power[subject[row]] - attenuation), -127, 20).astype(np.int16)

    heard = rssi >= params.sensitivity_dbm
    observer, subject, time, rssi, row = observer[row][heard], subject[row][heard], time[heard], rssi[heard], row[heard]
    # Two encounters of the same pair may overlap (a meeting with a desk neighbour): a scan hears a phone once.
    order = np.lexsort((subject, time, observer))
    observer, subject, time = observer[order], subject[order], time[order]
    repeat = np.r_[False, (observer[1:] == observer[:-1]) & (subject[1:] == subject[:-1]) & (time[1:] == time[:-1])]
    keep = order[~repeat]
    return Sightings(
        observer=observer[~repeat],
        subject=subject[~repeat],
        time=time[~repeat],
        rssi=rssi[keep],
        encounter=index[row[keep]],
    )
