"""The dry run refuses exactly what the server's rules refuse, and says why in the file's terms."""

from __future__ import annotations

from clients.ha.gaen_export import read_export
from clients.ha.local_check import check_locally, reasons_by_index
from clients.ha.source_keys import SourceKey
from matcher.clock import parse_time
from matcher.errors import Violation
from matcher.model import ReportType
from matcher.validation import check_keys
from tests.ha.conftest import (
    ENS_BOTH_VALID,
    ENS_ONE_TOO_OLD,
    ENS_ZIP,
    INTERNALS_ALL_VALID,
    INTERNALS_FIRST_TWO_DAYS,
    INTERNALS_TWO_DAYS_LATER,
    INTERNALS_ZIP,
)

NOW = 2650200 * 600
KEY = bytes(range(16))


def check(keys, now=NOW, default=ReportType.CONFIRMED_TEST):
    return check_locally(keys, default_report_type=default, now=now)


def test_every_internals_key_is_valid_just_after_the_newest_one_ends():
    verdict = check(read_export(INTERNALS_ZIP).source_keys(), now=parse_time(INTERNALS_ALL_VALID))
    assert len(verdict.valid) == 140 and verdict.rejected == ()


def test_two_days_later_the_keys_of_the_first_two_days_are_too_old():
    keys = read_export(INTERNALS_ZIP).source_keys()
    verdict = check(keys, now=parse_time(INTERNALS_TWO_DAYS_LATER))
    assert len(verdict.valid) == 120
    assert {r.key.rolling_start for r in verdict.rejected} == INTERNALS_FIRST_TWO_DAYS
    assert len(verdict.rejected) == 20
    assert {r.reason for r in verdict.rejected} == {
        "rolling_start_interval_number: expired more than 14 days ago; "
        "phones no longer hold observations it could match"
    }


def test_the_ens_keys_split_at_the_interval_where_the_older_leaves_retention():
    keys = read_export(ENS_ZIP).source_keys()
    assert len(check(keys, now=parse_time(ENS_BOTH_VALID)).valid) == 2
    verdict = check(keys, now=parse_time(ENS_ONE_TOO_OLD))
    assert [(key.rolling_start, key.rolling_period) for key, _ in verdict.valid] == [(2649980, 1)]
    assert [(r.key.rolling_start, r.key.rolling_period) for r in verdict.rejected] == [(2649866, 114)]


def test_the_default_report_type_fills_in_only_keys_without_one():
    keys = [SourceKey("a", KEY, 2650000), SourceKey("b", bytes(16), 2650000, report_type=ReportType.SELF_REPORT)]
    verdict = check(keys, default=ReportType.CONFIRMED_CLINICAL_DIAGNOSIS)
    assert [proto.report_type for _, proto in verdict.valid] == [
        ReportType.CONFIRMED_CLINICAL_DIAGNOSIS,
        ReportType.SELF_REPORT,
    ]


def test_the_verdict_is_the_servers_own_for_the_same_keys():
    keys = [
        SourceKey("ok", KEY, 2650000, 144, None, 3),
        SourceKey("future", bytes(16), NOW // 600 + 1),
        SourceKey("period", b"\x01" * 16, 2650000, 145),
        SourceKey("revoked", b"\x02" * 16, 2650000, report_type=ReportType.REVOKED, days_since_onset=20),
        SourceKey("short", b"\x03" * 15, 2650000),
    ]
    verdict = check(keys)
    server = check_keys([k.to_proto(ReportType.CONFIRMED_TEST) for k in keys], now=NOW, retention_days=14)
    assert [key.origin for key, _ in verdict.valid] == ["ok"]
    assert [keys[index].origin for index, _ in server.accepted] == ["ok"]
    assert {r.key.origin for r in verdict.rejected} == {"future", "period", "revoked", "short"}
    assert len(server.rejected) == 5  # the revoked key breaks two rules


def test_all_problems_of_a_key_are_one_reason_with_fields_relative_to_the_key():
    [rejection] = check([SourceKey("x", KEY, 2650000, report_type=ReportType.REVOKED, days_since_onset=20)]).rejected
    assert rejection.reason == (
        "report_type: REVOKED is not supported: a published batch cannot withdraw a key; "
        "days_since_onset_of_symptoms: must be -14..14, got 20"
    )


def test_a_key_given_twice_is_refused_in_every_copy():
    keys = [
        SourceKey("line 2", KEY, 2650000),
        SourceKey("line 3", bytes(16), 2650000),
        SourceKey("line 9", KEY, 2650144),
    ]
    verdict = check(keys)
    assert [key.origin for key, _ in verdict.valid] == ["line 3"]
    assert [r.key.origin for r in verdict.rejected] == ["line 2", "line 9"]
    assert verdict.rejected[0].reason.startswith("key_data: the same key appears more than once")


def test_reasons_group_by_key_and_keep_unprefixed_fields():
    problems = [(1, Violation("keys[1].rolling_period", "bad")), (1, Violation("keys[1].report_type", "worse")),
                (4, Violation("keys[4]", "gone")), (0, Violation("region", "other"))]  # fmt: skip
    assert reasons_by_index(problems) == {
        1: "rolling_period: bad; report_type: worse",
        4: "key: gone",
        0: "region: other",
    }
