"""The false-positive derivation, checked empirically: simulated phone-days of random observations go through the
real batch builder, the real phone matching and the real scoring, at a false-positive rate inflated until false
alarms are common enough to count, and the alarms found are the ones matcher/fprate.py predicts.

The world is the derivation's: a phone records O distinct identifiers a day at uniformly random times, none of
them from a case, and every batch covers every day. The threshold is set so low that any coherent pair of matched
windows alerts (a sighting counts at least one second), which is the event the derivation bounds. Predicted
alarm-days are ``sum over days of 1 - exp(-mu)``; the test accepts a count within a factor of 2 of it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from clients.phone.matching import match_new
from clients.phone.scoring import score
from clients.phone.store import PhoneStore
from exposure.v1 import batch_pb2
from matcher import fprate
from matcher.batches import budget_error_rate, build_batch, sign_header
from matcher.exposure_config import default_config
from matcher.model import DiagnosisKey, ReportType
from matcher.signing import generate_signing_key

FIRST_DAY = 2991888 // 144  # 2026-11-19
DAYS = 800  # phone-days
OBSERVATIONS = 1_000  # a day
BATCHES = 2
EXPECTED_ALARMS = 100  # the inflated rate is chosen for about this many alarm-days


def inflated_error_rate() -> float:
    """The rate at which the derivation expects EXPECTED_ALARMS over DAYS phone-days (mu small enough that a day
    rarely has two coherent pairs, large enough to count)."""
    unit = fprate.expected_false_alarms_per_day(1.0, batches=BATCHES, observations_per_day=OBSERVATIONS)
    return math.sqrt(EXPECTED_ALARMS / DAYS / unit)


def cut_batches(error_rate: float, published_at: int) -> list[tuple[bytes, int, bytes]]:
    """BATCHES signed batches whose interval range covers every simulated day: two keys each, on the first and
    last day. The elements themselves never meet the phone's random identifiers; only the range and the hash range
    (N x ceil(1 / error_rate)) matter."""
    signing_key = generate_signing_key()
    out = []
    for n in range(BATCHES):
        keys = [
            DiagnosisKey(bytes([n, end]) * 8, (FIRST_DAY + end * (DAYS - 1)) * 144, 144, ReportType.CONFIRMED_TEST)
            for end in (0, 1)
        ]
        built = build_batch(
            keys,
            sequence=n + 1,
            published_at=published_at,
            region="VN",
            config=default_config(),
            signing_key=signing_key,
            error_rate=error_rate,
        )
        out.append((sign_header(built.header, signing_key).SerializeToString(), published_at, built.body))
    return out


@pytest.mark.slow
def test_simulated_phone_days_have_the_false_alarms_the_derivation_predicts():
    rng = np.random.default_rng(20261202)
    error_rate = inflated_error_rate()
    published_at = (FIRST_DAY + DAYS) * 86400
    phone = PhoneStore(":memory:")
    for sequence, (signed, at, body) in enumerate(cut_batches(error_rate, published_at), 1):
        phone.keep_batch(sequence, signed, at, body)
    rate = [
        budget_error_rate(
            batch_pb2.BatchHeader.FromString(batch_pb2.SignedBatchHeader.FromString(k.signed_header).header)
        )
        for k in phone.batches()
    ]
    times = (FIRST_DAY + np.repeat(np.arange(DAYS), OBSERVATIONS)) * 86400 + rng.integers(0, 86400, DAYS * OBSERVATIONS)
    rpis = rng.integers(0, 256, (len(times), 16), dtype=np.uint8)
    phone.add_sightings(
        zip(
            (r.tobytes() for r in rpis),
            (times // 600).tolist(),
            times.tolist(),
            [-50] * len(times),
            [bytes(4)] * len(times),
        )
    )
    config = default_config()
    config.minimum_weighted_minutes_per_day = 0.01  # any coherent pair alerts: a sighting counts >= 1 second

    matched = match_new(phone, config)
    alarms = sum(day.alert for day in score(phone, config))

    per_day = sum(
        fprate.expected_false_alarms_per_day(eps, batches=1, observations_per_day=OBSERVATIONS) for eps in rate
    )
    predicted = DAYS * -math.expm1(-per_day)
    lookups = DAYS * OBSERVATIONS * fprate.mean_tested_intervals() * sum(rate)
    assert matched == pytest.approx(lookups, rel=0.1)  # single false matches: the per-lookup rate itself
    assert predicted / 2 <= alarms <= predicted * 2, f"{alarms} false alarm-days, {predicted:.1f} predicted"
