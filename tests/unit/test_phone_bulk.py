"""Phone-library calls for many sightings at once: a whole day of broadcasts, sightings of a time span, and
matching that reads the untested sightings once for every batch."""

from __future__ import annotations

import numpy as np

from clients.phone.keys import broadcast_at, day_broadcasts, key_for_day, set_tx_power
from clients.phone.matching import match_new
from clients.phone.store import PhoneStore
from matcher.batches import build_batch, sign_header
from matcher.exposure_config import default_config
from matcher.fprate import error_rate_for
from matcher.model import DiagnosisKey, ReportType
from matcher.signing import generate_signing_key

DAY = 2991960 - 2991960 % 144  # 2026-11-20, first interval
SIGNING_KEY = generate_signing_key()
CONFIG = default_config()


def test_a_days_broadcasts_are_what_broadcast_at_gives_for_each_interval():
    phone = PhoneStore(":memory:")
    set_tx_power(phone, -11)
    start, rpis, aems = day_broadcasts(phone, DAY + 70)
    assert start == DAY and rpis.shape == (144, 16) and aems.shape == (144, 4)
    for slot in (0, 1, 70, 143):
        one = broadcast_at(phone, (DAY + slot) * 600 + 599)
        assert (one.rpi, one.aem) == (rpis[slot].tobytes(), aems[slot].tobytes())


def test_sightings_during_a_span_are_those_recorded_in_it():
    phone = PhoneStore(":memory:")
    phone.add_sightings([(bytes([n]) * 16, n, 1000 + 100 * n, -60, b"\0" * 4) for n in range(10)])
    during = phone.sightings(during=(1200, 1500))
    assert during.times.tolist() == [1200, 1300, 1400]
    assert phone.sightings(after_id=9).times.tolist() == [1900]  # ids start at 1
    assert len(phone.sightings().select(np.arange(10) % 2 == 0)) == 5


def case_keys(days: list[int]) -> tuple[PhoneStore, list[DiagnosisKey]]:
    case = PhoneStore(":memory:")
    keys = []
    for day in days:
        start, tek = key_for_day(case, DAY + 144 * day)
        keys.append(DiagnosisKey(tek, start, 144, ReportType.CONFIRMED_TEST, days_since_onset=0))
    return case, keys


def keep(phone: PhoneStore, sequence: int, keys: list[DiagnosisKey], published_at: int) -> None:
    config = default_config()
    built = build_batch(
        keys,
        sequence=sequence,
        published_at=published_at,
        region="VN",
        config=config,
        signing_key=SIGNING_KEY,
        error_rate=error_rate_for(),
    )
    signed = sign_header(built.header, SIGNING_KEY)
    phone.keep_batch(sequence, signed.SerializeToString(), published_at, built.body)


def heard(case: PhoneStore, interval: int, rssi: int = -55) -> tuple[bytes, int, int, int, bytes]:
    b = broadcast_at(case, interval * 600 + 300)
    return b.rpi, interval, interval * 600 + 300, rssi, b.aem


def test_each_new_batch_tests_the_old_sightings_in_its_range_and_never_those_heard_after_it():
    case, keys = case_keys([0, 1, 2])
    phone = PhoneStore(":memory:")
    phone.add_sightings([heard(case, DAY + 10), heard(case, DAY + 144 + 10)])  # days 0 and 1
    keep(phone, 1, keys[:1], published_at=(DAY + 144 + 100) * 600)  # day 0's key, published on day 1
    assert match_new(phone, CONFIG) == 1  # day 0's sighting; day 1's is outside the range

    phone.add_sightings([heard(case, DAY + 288 + 10)])  # day 2, after batch 1
    keep(phone, 2, keys[1:], published_at=(DAY + 432) * 600)  # days 1 and 2, published on day 3
    assert match_new(phone, CONFIG) == 2  # the old sighting of day 1 and the new one of day 2
    assert sorted((sequence for _, sequence, _, _ in phone.matches())) == [1, 2, 2]
    assert [interval for *_, interval in phone.matches()] == [DAY + 10, DAY + 144 + 10, DAY + 288 + 10]
    assert match_new(phone, CONFIG) == 0  # nothing is tested twice
    assert {kept.checked_through for kept in phone.batches()} == {phone.last_sighting_id()}


def test_a_batch_without_sections_matches_nothing_and_is_marked_checked():
    phone = PhoneStore(":memory:")
    case, _ = case_keys([0])
    phone.add_sightings([heard(case, DAY + 10)])
    keep(phone, 1, [], published_at=(DAY + 200) * 600)
    assert match_new(phone, CONFIG) == 0 and phone.batches()[0].checked_through == phone.last_sighting_id()


def test_sightings_the_configuration_can_never_count_are_not_tested():
    case, keys = case_keys([0])
    phone = PhoneStore(":memory:")
    # attenuation -8 - RSSI: -90 dBm is 82 dB, past the last threshold (73 dB), whose weight is 0
    phone.add_sightings([heard(case, DAY + 10, rssi=-90), heard(case, DAY + 11, rssi=-70)])
    keep(phone, 1, keys, published_at=(DAY + 200) * 600)
    assert match_new(phone, CONFIG) == 1
    assert [interval for *_, interval in phone.matches()] == [DAY + 11]


def test_a_new_configuration_tests_every_sighting_again():
    case, keys = case_keys([0])
    phone = PhoneStore(":memory:")
    phone.add_sightings([heard(case, DAY + 10, rssi=-90), heard(case, DAY + 11, rssi=-70)])
    keep(phone, 1, keys, published_at=(DAY + 200) * 600)
    assert match_new(phone, CONFIG) == 1
    counts_far = default_config()
    counts_far.attenuation_weights[3] = 0.2
    assert match_new(phone, counts_far) == 2  # both, from scratch
    assert match_new(phone, counts_far) == 0
    assert match_new(phone, CONFIG) == 1 and len(phone.matches()) == 1
