"""The exposure (risk scoring) configuration: its default, its rules, and signing it for phones.

The server uses one part of it itself: ``infectiousness_for_days_since_onset`` decides the risk class (filter)
a key is published in, and keys of infectiousness NONE are not published. Phones use the rest to score.
"""

from __future__ import annotations

import math

import numpy as np

from exposure.v1 import config_pb2, keys_pb2

from .envelope import EXPOSURE_CONFIG, Rejected, open_envelope, seal
from .errors import InvalidArgument, Violation
from .model import (
    MAX_DAYS_SINCE_ONSET,
    MAX_TX_POWER_DBM,
    MIN_DAYS_SINCE_ONSET,
    MIN_TX_POWER_DBM,
    ExposureLevel,
    Infectiousness,
    ReportType,
)
from .signing import SigningKey, TrustedKeys

ATTENUATION_BUCKETS = 4  # immediate, near, medium, other
MAX_WEIGHT = 2.5  # GAEN's upper bound for every weight
MAX_SIGHTING_CREDIT_SECONDS = 600  # one interval
MAX_VENUE_OVERLAP_MINUTES = 60  # one warned hour
# A matched (RPI, interval) observation counts for at most one interval's worth of minutes, however many
# sightings it has: the identifier was only broadcast for 10 minutes.
MAX_MINUTES_PER_OBSERVATION = 10.0
# W, the alarm rule's coherence window: a match counts only when another match of the same section of the same
# batch lies at an interval 1 .. W-1 away (both within one hour). A real exposure of 15 minutes or more always
# has two such matches; false positives rarely do, which is what lets batches be sized for a far higher
# false-positive rate (matcher/fprate.py, docs/spec.md "Alarm rule").
COHERENCE_INTERVALS = 6


def default_config() -> config_pb2.ExposureConfig:
    """The configuration a server starts with.

    Attenuation buckets follow common GAEN deployments (55/63/73 dB). Every weight is at most 1, so that one
    matched interval (at most 10 weighted minutes) never reaches the 15-minute daily threshold. Infectiousness is HIGH from two days before
    symptom onset to three days after, STANDARD until day 14, and NONE before day -2; keys with no onset are
    STANDARD. A contact of a case (F2 exposure: RECURSIVE keys) alerts after 30 weighted minutes, not 15: the
    contact may not be infected at all, so the warning asks for more.
    """
    days = dict.fromkeys(range(MIN_DAYS_SINCE_ONSET, -2), Infectiousness.NONE)
    days.update(dict.fromkeys(range(-2, 4), Infectiousness.HIGH))
    days.update(dict.fromkeys(range(4, MAX_DAYS_SINCE_ONSET + 1), Infectiousness.STANDARD))
    return config_pb2.ExposureConfig(
        attenuation_thresholds_db=[55, 63, 73],
        attenuation_weights=[1.0, 1.0, 0.5, 0.0],
        weight_confirmed_test=1.0,
        weight_confirmed_clinical_diagnosis=1.0,
        weight_self_report=0.8,
        weight_infectiousness_standard=1.0,
        weight_infectiousness_high=1.0,
        infectiousness_for_days_since_onset={
            d: keys_pb2.Infectiousness.ValueType(i) for d, i in days.items() if i != Infectiousness.NONE
        },
        infectiousness_when_days_since_onset_missing=keys_pb2.Infectiousness.ValueType(Infectiousness.STANDARD),
        minimum_weighted_minutes_per_day=15.0,
        sighting_credit_cap_seconds=300,
        tx_power_dbm_when_unknown=-8,
        weight_recursive=1.0,
        minimum_weighted_minutes_per_day_recursive=30.0,
        minimum_venue_overlap_minutes=15,
    )


def check_config(config: config_pb2.ExposureConfig, field: str = "config") -> list[Violation]:
    """Every problem with a configuration; empty when it is usable."""
    problems: list[Violation] = []
    thresholds = list(config.attenuation_thresholds_db)
    if len(thresholds) != ATTENUATION_BUCKETS - 1 or thresholds != sorted(set(thresholds)):
        problems.append(
            Violation(f"{field}.attenuation_thresholds_db", "must be exactly 3 strictly increasing values in dB")
        )
    elif thresholds[-1] > 255:
        problems.append(Violation(f"{field}.attenuation_thresholds_db", "values must be at most 255 dB"))
    weights = list(config.attenuation_weights)
    if len(weights) != ATTENUATION_BUCKETS:
        problems.append(Violation(f"{field}.attenuation_weights", "must be exactly 4 weights"))
    for name, value in _weights(config):
        if not (math.isfinite(value) and 0 <= value <= MAX_WEIGHT):
            problems.append(Violation(f"{field}.{name}", f"must be 0..{MAX_WEIGHT}, got {value}"))
    for days, infectiousness in config.infectiousness_for_days_since_onset.items():
        if not MIN_DAYS_SINCE_ONSET <= days <= MAX_DAYS_SINCE_ONSET:
            problems.append(
                Violation(
                    f"{field}.infectiousness_for_days_since_onset[{days}]",
                    f"days since onset must be {MIN_DAYS_SINCE_ONSET}..{MAX_DAYS_SINCE_ONSET}",
                )
            )
        if int(infectiousness) not in Infectiousness.__members__.values():
            problems.append(
                Violation(f"{field}.infectiousness_for_days_since_onset[{days}]", f"unknown value {infectiousness}")
            )
    if int(config.infectiousness_when_days_since_onset_missing) not in Infectiousness.__members__.values():
        problems.append(Violation(f"{field}.infectiousness_when_days_since_onset_missing", "unknown value"))
    for name in ("minimum_weighted_minutes_per_day", "minimum_weighted_minutes_per_day_recursive"):
        minimum = getattr(config, name)
        if not (math.isfinite(minimum) and minimum > 0):
            problems.append(Violation(f"{field}.{name}", f"must be > 0, got {minimum}"))
    if not 1 <= config.minimum_venue_overlap_minutes <= MAX_VENUE_OVERLAP_MINUTES:
        problems.append(
            Violation(f"{field}.minimum_venue_overlap_minutes", f"must be 1..{MAX_VENUE_OVERLAP_MINUTES} minutes")
        )
    if not 1 <= config.sighting_credit_cap_seconds <= MAX_SIGHTING_CREDIT_SECONDS:
        problems.append(Violation(f"{field}.sighting_credit_cap_seconds", f"must be 1..{MAX_SIGHTING_CREDIT_SECONDS}"))
    if not MIN_TX_POWER_DBM <= config.tx_power_dbm_when_unknown <= MAX_TX_POWER_DBM:
        problems.append(
            Violation(f"{field}.tx_power_dbm_when_unknown", f"must be {MIN_TX_POWER_DBM}..{MAX_TX_POWER_DBM} dBm")
        )
    return problems


def validate_config(config: config_pb2.ExposureConfig) -> None:
    problems = check_config(config)
    if problems:
        raise InvalidArgument("the exposure configuration is not valid", problems)


def _weights(config: config_pb2.ExposureConfig) -> list[tuple[str, float]]:
    named = [(f"attenuation_weights[{i}]", w) for i, w in enumerate(config.attenuation_weights)]
    for name in (
        "weight_confirmed_test",
        "weight_confirmed_clinical_diagnosis",
        "weight_self_report",
        "weight_infectiousness_standard",
        "weight_infectiousness_high",
        "weight_recursive",
    ):
        named.append((name, getattr(config, name)))
    return named


def attenuation_weights(attenuation: np.ndarray, config: config_pb2.ExposureConfig) -> np.ndarray:
    """The weight of each attenuation (dB) by the configuration's buckets: ``(n,)`` float64."""
    bucket = np.searchsorted(np.array(config.attenuation_thresholds_db), attenuation, side="left")
    return np.array(config.attenuation_weights, dtype=np.float64)[bucket]


def report_type_weight(config: config_pb2.ExposureConfig, report_type: ReportType) -> float:
    return {
        ReportType.CONFIRMED_TEST: config.weight_confirmed_test,
        ReportType.CONFIRMED_CLINICAL_DIAGNOSIS: config.weight_confirmed_clinical_diagnosis,
        ReportType.SELF_REPORT: config.weight_self_report,
        ReportType.RECURSIVE: config.weight_recursive,
    }.get(report_type, 0.0)


def alert_threshold(config: config_pb2.ExposureConfig, level: ExposureLevel) -> float:
    """The weighted minutes a day needs to alert at this tier: F1 and F2 each have their own, and each counts only
    its own matches."""
    if level == ExposureLevel.F2:
        return config.minimum_weighted_minutes_per_day_recursive
    return config.minimum_weighted_minutes_per_day


def infectiousness_weight(config: config_pb2.ExposureConfig, infectiousness: Infectiousness) -> float:
    return {
        Infectiousness.STANDARD: config.weight_infectiousness_standard,
        Infectiousness.HIGH: config.weight_infectiousness_high,
    }.get(infectiousness, 0.0)


def infectiousness_of(config: config_pb2.ExposureConfig, days_since_onset: int | None) -> Infectiousness:
    """The infectiousness (and so the filter) of a key; NONE means the key is not published."""
    if days_since_onset is None:
        return Infectiousness(config.infectiousness_when_days_since_onset_missing)
    return Infectiousness(config.infectiousness_for_days_since_onset.get(days_since_onset, Infectiousness.NONE))


def sign_config(config: config_pb2.ExposureConfig, key: SigningKey) -> config_pb2.SignedExposureConfig:
    return seal(EXPOSURE_CONFIG, config, key)


def open_config(signed: config_pb2.SignedExposureConfig, trusted: TrustedKeys) -> config_pb2.ExposureConfig:
    """Verifies a signed configuration against the pinned keys, then parses and checks it.

    Raises Rejected (matcher/envelope.py); a phone that gets it keeps its previous configuration.
    """
    config = open_envelope(EXPOSURE_CONFIG, signed, trusted)
    problems = check_config(config)
    if problems:
        raise Rejected(
            "exposure configuration refused: the signed exposure configuration is not usable: "
            f"{problems[0].field} {problems[0].description}"
        )
    return config


def config_in_force(stored: bytes | None) -> config_pb2.ExposureConfig:
    """The configuration in force, from the store's signed bytes, or the default before any was set."""
    if stored is None:
        return default_config()
    return config_pb2.ExposureConfig.FromString(config_pb2.SignedExposureConfig.FromString(stored).config)
