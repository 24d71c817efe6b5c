"""The phone's decoy shares (clients/phone/decoy.py): made of nothing the phone holds, sent on a random schedule."""

from __future__ import annotations

import random
import statistics

from clients.phone.decoy import DECOY_KEYS, decoy_due, decoy_request, next_interval_seconds
from clients.phone.keys import broadcast_at, key_for_day
from clients.phone.store import PhoneStore
from matcher import codes
from matcher.intervals import interval_number
from matcher.model import ReportType
from matcher.padding import REQUEST
from matcher.validation import Diagnosis, check_keys, code_of_upload

NOW = 1795176000


def test_a_decoy_carries_nothing_of_the_phone_and_passes_a_shares_checks(tmp_path):
    phone = PhoneStore(tmp_path / "phone.db")
    for day in range(15):
        key_for_day(phone, interval_number(NOW) - 144 * day)
    heard = broadcast_at(phone, NOW - 86400)
    wire = decoy_request(NOW).SerializeToString()
    assert not any(tek in wire for _, tek, _ in phone.own_keys()) and heard.rpi not in wire
    decoy = decoy_request(NOW)
    assert decoy.decoy and len(wire) == REQUEST.floor and len(decoy.keys) == DECOY_KEYS
    assert codes.normalise(code_of_upload(decoy)) is not None
    verdict = check_keys(decoy.keys, now=NOW, retention_days=14, diagnosis=Diagnosis(ReportType.CONFIRMED_TEST, None))
    assert len(verdict.keys) == DECOY_KEYS  # each of a valid key's shape, as a share's
    assert decoy_request(NOW).code != decoy.code and decoy_request(NOW).keys[0] != decoy.keys[0]  # made up anew


def test_the_schedule_starts_at_the_first_sync_and_sends_one_decoy_when_its_time_has_passed(tmp_path):
    phone = PhoneStore(tmp_path / "phone.db")
    rng = random.Random(7)
    assert not decoy_due(phone, NOW, 1.0, rng)  # the first sync only draws the first time
    first = phone.get_int("next_decoy_at")
    assert first > NOW
    assert not decoy_due(phone, first - 1, 1.0, rng)
    assert decoy_due(phone, first + 30 * 86400, 1.0, rng)  # a month offline: one decoy, not thirty
    assert not decoy_due(phone, first + 30 * 86400, 1.0, rng)
    assert not decoy_due(PhoneStore(tmp_path / "other.db"), NOW, 0.0, rng) and not decoy_due(phone, 2**40, 0.0, rng)


def test_decoy_times_are_exponential_with_the_rate_asked_a_poisson_process():
    rng = random.Random(1)
    gaps = [next_interval_seconds(0.5, rng) for _ in range(20_000)]
    assert min(gaps) > 0
    assert abs(statistics.fmean(gaps) / 86400 - 2.0) < 0.05  # 0.5 a day: two days apart on average
    assert abs(statistics.pstdev(gaps) / statistics.fmean(gaps) - 1.0) < 0.05  # exponential: sd equals mean
