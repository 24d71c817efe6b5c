"""Key validation: every rule, with accepted and refused cases, asserting which field failed and why."""

from __future__ import annotations

import datetime as dt

import pytest

from exposure.v1 import authority_pb2, keys_pb2
from matcher.errors import InvalidArgument
from matcher.intervals import day_of
from matcher.model import EMBARGO_GRACE_SECONDS, MAX_KEYS_PER_SUBMISSION, ExposureLevel, ReportType
from matcher.validation import (
    Diagnosis,
    check_keys,
    submission_digest,
    submission_from_request,
)
from tests.conftest import VECTOR_DAY_START

NOW = VECTOR_DAY_START + 12 * 3600  # noon on 2020-04-02
TODAY = 2642976
RETENTION = 14


def key(n: int = 1, **fields) -> keys_pb2.DiagnosisKey:
    values = {
        "key_data": bytes([n]) * 16,
        "rolling_start_interval_number": TODAY - 144,
        "rolling_period": 144,
        "report_type": ReportType.CONFIRMED_TEST,
    }
    values.update(fields)
    return keys_pb2.DiagnosisKey(**values)


def verdict_of(*keys, diagnosis=None, now=NOW):
    return check_keys(keys, now=now, retention_days=RETENTION, diagnosis=diagnosis)


def refused_fields(*keys, **kwargs) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for index, violation in verdict_of(*keys, **kwargs).rejected:
        found.setdefault(index, []).append(violation.field)
    return found


# --- accepted ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"rolling_period": 1},
        {"rolling_period": 0},  # absent: read as 144, as GAEN does
        {"rolling_start_interval_number": TODAY - 144 + 37, "rolling_period": 100},  # not midnight-aligned
        {"rolling_start_interval_number": TODAY - 14 * 144 + 1},  # ends inside the retention window
        {"report_type": ReportType.CONFIRMED_CLINICAL_DIAGNOSIS},
        {"report_type": ReportType.SELF_REPORT},
        {"days_since_onset_of_symptoms": -14},
        {"days_since_onset_of_symptoms": 14},
        {"days_since_onset_of_symptoms": 0},
        {"tx_power_dbm": -40},
        {"tx_power_dbm": 20},
    ],
)
def test_a_valid_key_is_accepted(fields):
    verdict = verdict_of(key(**fields))
    assert verdict.rejected == ()
    [(index, accepted)] = verdict.accepted
    assert index == 0 and accepted.key_data == bytes([1]) * 16


def test_an_absent_rolling_period_means_144():
    assert verdict_of(key(rolling_period=0)).keys[0].rolling_period == 144


def test_absent_days_since_onset_stays_unknown_and_zero_is_kept():
    assert verdict_of(key()).keys[0].days_since_onset is None
    assert verdict_of(key(days_since_onset_of_symptoms=0)).keys[0].days_since_onset == 0


def test_a_stated_tx_power_is_checked_but_not_kept():
    # batches do not carry it (docs/spec.md, "Risk classes and sections"), so the service has no use for it
    [accepted] = verdict_of(key(tx_power_dbm=-12)).keys
    assert accepted == verdict_of(key()).keys[0]


def test_a_key_still_in_use_is_accepted_and_embargoed_until_it_expires():
    [accepted] = verdict_of(key(rolling_start_interval_number=TODAY)).keys
    assert accepted.publish_after() == (TODAY + 144) * 600 + EMBARGO_GRACE_SECONDS
    assert accepted.publish_after() > NOW


def test_a_key_that_started_this_very_interval_is_accepted():
    assert verdict_of(key(rolling_start_interval_number=NOW // 600)).rejected == ()


# --- refused, one rule at a time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, field, reason",
    [
        ({"key_data": b""}, "key_data", "must be 16 bytes, got 0"),
        ({"key_data": bytes(15)}, "key_data", "must be 16 bytes, got 15"),
        ({"key_data": bytes(17)}, "key_data", "must be 16 bytes, got 17"),
        ({"rolling_period": 145}, "rolling_period", "must be 1..144"),
        ({"rolling_period": 2**31}, "rolling_period", "must be 1..144"),
        ({"rolling_start_interval_number": NOW // 600 + 1}, "rolling_start_interval_number", "in the future"),
        ({"rolling_start_interval_number": 2**32 - 1}, "rolling_start_interval_number", "in the future"),
        ({"rolling_start_interval_number": TODAY - 15 * 144}, "rolling_start_interval_number", "expired more"),
        ({"rolling_start_interval_number": 0}, "rolling_start_interval_number", "expired more"),
        ({"report_type": ReportType.UNSPECIFIED}, "report_type", "is required"),
        ({"report_type": ReportType.REVOKED}, "report_type", "REVOKED is not supported"),
        ({"report_type": 17}, "report_type", "unknown report type 17"),
        ({"days_since_onset_of_symptoms": 15}, "days_since_onset_of_symptoms", "must be -14..14, got 15"),
        ({"days_since_onset_of_symptoms": -15}, "days_since_onset_of_symptoms", "must be -14..14, got -15"),
        ({"tx_power_dbm": 21}, "tx_power_dbm", "must be -40..20 dBm, got 21"),
        ({"tx_power_dbm": -41}, "tx_power_dbm", "must be -40..20 dBm, got -41"),
    ],
)
def test_a_key_breaking_one_rule_is_refused_naming_the_field(fields, field, reason):
    verdict = verdict_of(key(2), key(**fields))
    assert [index for index, _ in verdict.accepted] == [0]
    [(index, violation)] = verdict.rejected
    assert index == 1
    assert violation.field == f"keys[1].{field}"
    assert reason in violation.description


def test_a_key_that_ended_exactly_at_the_retention_cutoff_is_refused():
    cutoff = NOW // 600 - RETENTION * 144
    assert refused_fields(key(rolling_start_interval_number=cutoff - 144)) == {
        0: ["keys[0].rolling_start_interval_number"]
    }
    assert refused_fields(key(rolling_start_interval_number=cutoff - 143)) == {}


def test_every_problem_of_a_key_is_reported_not_just_the_first():
    fields = refused_fields(key(key_data=b"x", rolling_period=500, report_type=0, days_since_onset_of_symptoms=99))
    assert sorted(fields[0]) == [
        "keys[0].days_since_onset_of_symptoms",
        "keys[0].key_data",
        "keys[0].report_type",
        "keys[0].rolling_period",
    ]


def test_every_copy_of_a_duplicated_key_is_refused():
    verdict = verdict_of(key(1), key(2), key(1, rolling_start_interval_number=TODAY - 288))
    assert [index for index, _ in verdict.accepted] == [1]
    assert {index for index, _ in verdict.rejected} == {0, 2}
    assert all("more than once (keys[0], keys[2])" in v.description for _, v in verdict.rejected)


# --- uploads with a one-time code ------------------------------------------------------------------------------


def test_a_code_supplies_report_type_and_days_since_onset_whatever_the_phone_says():
    diagnosis = Diagnosis(ReportType.CONFIRMED_CLINICAL_DIAGNOSIS, dt.date(2020, 3, 30))
    [accepted] = verdict_of(key(report_type=0, days_since_onset_of_symptoms=99), diagnosis=diagnosis).keys
    assert accepted.report_type == ReportType.CONFIRMED_CLINICAL_DIAGNOSIS
    assert accepted.days_since_onset == 2  # the key's day is 2020-04-01


def test_days_since_onset_from_a_code_is_clamped_to_the_gaen_range():
    diagnosis = Diagnosis(ReportType.CONFIRMED_TEST, dt.date(2020, 5, 30))
    [accepted] = verdict_of(key(), diagnosis=diagnosis).keys
    assert accepted.days_since_onset == -14


def test_a_code_without_onset_leaves_days_since_onset_unknown():
    [accepted] = verdict_of(key(), diagnosis=Diagnosis(ReportType.CONFIRMED_TEST, None)).keys
    assert accepted.days_since_onset is None


# --- whole submissions -----------------------------------------------------------------------------------------


def request(*keys, submission_id="sub-1", region="VN"):
    return authority_pb2.SubmitKeysRequest(submission_id=submission_id, region=region, keys=keys)


def submit(req):
    return submission_from_request(req, authority="ha-north", default_region="VN", now=NOW, retention_days=RETENTION)


def test_a_valid_submission_becomes_a_domain_submission():
    submission, verdict = submit(request(key(1), key(2)))
    assert submission.authority == "ha-north" and submission.submission_id == "sub-1"
    assert len(submission.keys) == 2 and verdict.rejected == ()


def test_an_empty_region_means_the_authority_default():
    submission, _ = submit(request(key(), region=""))
    assert submission.region == "VN"


def test_partial_success_keeps_the_valid_keys_and_reports_the_others():
    submission, verdict = submit(request(key(1), key(2, key_data=b"short")))
    assert [k.key_data for k in submission.keys] == [bytes([1]) * 16]
    assert [(i, v.field) for i, v in verdict.rejected] == [(1, "keys[1].key_data")]


@pytest.mark.parametrize(
    "req, field",
    [
        (request(key(), submission_id=""), "submission_id"),
        (request(key(), submission_id="a" * 129), "submission_id"),
        (request(key(), submission_id="has space"), "submission_id"),
        (request(key(), submission_id="ünïcode"), "submission_id"),
        (request(key(), region="vn"), "region"),
        (request(key(), region="VNM"), "region"),
        (request(), "keys"),
        (request(*[key(n) for n in range(MAX_KEYS_PER_SUBMISSION + 1)]), "keys"),
    ],
)
def test_a_malformed_submission_is_refused_as_a_whole(req, field):
    with pytest.raises(InvalidArgument, match=r"^the submission is malformed$") as raised:
        submit(req)
    assert [v.field for v in raised.value.violations] == [field]


def test_exactly_30_keys_are_allowed():
    submission, _ = submit(request(*[key(n) for n in range(MAX_KEYS_PER_SUBMISSION)]))
    assert len(submission.keys) == MAX_KEYS_PER_SUBMISSION


def test_a_submission_with_no_valid_key_is_refused_naming_every_problem():
    with pytest.raises(InvalidArgument, match=r"^no key in the request is valid$") as raised:
        submit(request(key(1, key_data=b"x"), key(2, rolling_period=999)))
    assert [v.field for v in raised.value.violations] == ["keys[0].key_data", "keys[1].rolling_period"]


def test_all_request_level_problems_are_reported_together():
    with pytest.raises(InvalidArgument, match=r"^the submission is malformed$") as raised:
        submit(request(submission_id="", region="xx"))
    assert [v.field for v in raised.value.violations] == ["submission_id", "region", "keys"]


def test_the_content_digest_ignores_the_id_and_sees_every_field():
    base = submission_digest("VN", [key(1)])
    assert submission_digest("VN", [key(1)]) == base
    assert submission_digest("TH", [key(1)]) != base
    assert submission_digest("VN", [key(2)]) != base
    assert submission_digest("VN", [key(1, rolling_period=0)]) != base
    assert submission_digest("VN", [key(1, days_since_onset_of_symptoms=0)]) != base
    assert submission_digest("VN", [key(1, tx_power_dbm=0)]) != base
    assert submission_digest("VN", [key(1), key(2)]) != submission_digest("VN", [key(2), key(1)])


# --- codes, uploads and pages ---------------------------------------------------------------------------------------


def code_request(**fields):
    from matcher.validation import code_request_from

    request = authority_pb2.IssueCodeRequest(**{"report_type": ReportType.CONFIRMED_TEST, **fields})
    return code_request_from(request, now=NOW, retention_days=RETENTION, default_ttl=3600)


def test_a_code_request_carries_its_diagnosis_and_the_default_lifetime():
    wanted = code_request(symptom_onset_date="2020-03-30")
    assert wanted.diagnosis == Diagnosis(ReportType.CONFIRMED_TEST, dt.date(2020, 3, 30))
    assert wanted.ttl_seconds == 3600 and code_request(ttl_seconds=600).ttl_seconds == 600


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"report_type": ReportType.UNSPECIFIED}, "report_type"),
        ({"report_type": ReportType.REVOKED}, "report_type"),
        ({"symptom_onset_date": "yesterday"}, "symptom_onset_date"),
        ({"symptom_onset_date": "2020-04-03"}, "symptom_onset_date"),  # tomorrow
        ({"symptom_onset_date": "2020-03-04"}, "symptom_onset_date"),  # 29 days ago
        ({"ttl_seconds": 86401}, "ttl_seconds"),
        ({"exposure_date": "2020-03-30"}, "exposure_date"),  # a case's code has no exposure date
        ({"exposure_level": 1}, "exposure_date"),
    ],
)
def test_a_bad_code_request_names_the_field(fields, field):
    with pytest.raises(
        InvalidArgument, match=r"^(the code request is not valid|symptom_onset_date is not a date)$"
    ) as raised:
        code_request(**fields)
    assert [v.field for v in raised.value.violations] == [field]


def contact_code(**fields):
    return code_request(
        **{
            "report_type": ReportType.RECURSIVE,
            "exposure_date": "2020-03-30",
            "exposure_level": ExposureLevel.F1,
            **fields,
        }
    )


def test_a_contacts_code_carries_the_day_of_its_exposure_and_no_onset():
    assert contact_code().diagnosis == Diagnosis(ReportType.RECURSIVE, None, dt.date(2020, 3, 30))


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"exposure_level": ExposureLevel.F2}, "exposure_level", "warnings stop at F2"),
        ({"exposure_level": 0}, "exposure_level", "is required for a RECURSIVE code"),
        ({"exposure_date": ""}, "exposure_date", "is required for a RECURSIVE code"),
        ({"exposure_date": "soon"}, "exposure_date", "not a date"),
        ({"exposure_date": "2020-04-03"}, "exposure_date", "after today"),
        ({"symptom_onset_date": "2020-03-30"}, "symptom_onset_date", "give the exposure date"),
    ],
)
def test_a_contacts_code_without_an_f1_exposure_day_is_refused(fields, field, reason):
    with pytest.raises(InvalidArgument, match=r"^the code request is not valid$") as raised:
        contact_code(**fields)
    [violation] = raised.value.violations
    assert violation.field == field and reason in violation.description


def test_a_contact_shares_the_days_from_its_exposure_on_for_at_most_seven_days():
    exposure = TODAY - 144 * 4  # four days ago
    diagnosis = Diagnosis(ReportType.RECURSIVE, None, day_of(exposure))
    keys = [key(n, rolling_start_interval_number=exposure + 144 * day) for n, day in enumerate((-1, 0, 3), 1)]
    verdict = check_keys(keys, now=NOW, retention_days=RETENTION, diagnosis=diagnosis)
    assert [index for index, _ in verdict.accepted] == [1, 2]
    assert all(k.report_type == ReportType.RECURSIVE and k.days_since_onset is None for k in verdict.keys)
    [(index, violation)] = verdict.rejected
    assert index == 0 and "a day before the contact's exposure" in violation.description
    late = Diagnosis(ReportType.RECURSIVE, None, day_of(exposure - 144 * 8))
    [(_, violation)] = check_keys(keys[2:], now=NOW, retention_days=RETENTION, diagnosis=late).rejected
    assert "more than 7 days after the contact's exposure" in violation.description


def test_an_onset_28_days_ago_is_still_accepted():
    assert code_request(symptom_onset_date="2020-03-05").diagnosis.symptom_onset == dt.date(2020, 3, 5)


def test_an_upload_code_is_normalised_and_a_malformed_one_named_with_the_key_count():
    from exposure.v1 import sharing_pb2
    from matcher.validation import code_of_upload

    good = sharing_pb2.SubmitWithCodeRequest(code="abcd-efgh-jkmn", keys=[key()])
    assert code_of_upload(good) == "ABCDEFGHJKMN"
    with pytest.raises(InvalidArgument, match=r"^the upload is malformed$") as raised:
        code_of_upload(sharing_pb2.SubmitWithCodeRequest(code="0000"))
    assert [v.field for v in raised.value.violations] == ["code", "keys"]


def test_page_sizes_default_to_100_and_stop_at_1000():
    from matcher.validation import page_size_of

    assert [page_size_of(0), page_size_of(1), page_size_of(1000)] == [100, 1, 1000]
    with pytest.raises(InvalidArgument, match=r"^page too large$") as raised:
        page_size_of(1001)
    assert [(v.field, v.description) for v in raised.value.violations] == [("page_size", "at most 1000, got 1001")]


# --- contact-interval pruning ----------------------------------------------------------------------------------


def test_a_contact_interval_bitmap_is_kept_only_for_an_authority_that_prunes_to_it():
    bitmap = bytes([0b101]) + bytes(17)
    [kept] = check_keys([key(contact_intervals=bitmap)], now=NOW, retention_days=RETENTION, contact_intervals=True).keys
    assert kept.contact_intervals == bitmap and kept.published_offsets() == [0, 2] and kept.elements == 2
    [dropped] = verdict_of(key(contact_intervals=bitmap)).keys
    assert dropped.contact_intervals is None and dropped.elements == 144
    [whole] = check_keys([key()], now=NOW, retention_days=RETENTION, contact_intervals=True).keys
    assert whole.contact_intervals is None and whole.published_offsets() == list(range(144))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"contact_intervals": bytes(17)}, "must be 18 bytes"),
        ({"contact_intervals": bytes(19)}, "must be 18 bytes"),
        ({"rolling_period": 37, "contact_intervals": bytes(4) + bytes([0b100000])}, "past the key's 37 intervals"),
    ],
)
def test_a_contact_interval_bitmap_of_the_wrong_size_is_refused_with_the_key(fields, reason):
    [(index, violation)] = verdict_of(key(**fields)).rejected
    assert (index, violation.field) == (0, "keys[0].contact_intervals") and reason in violation.description


def test_the_contact_intervals_are_part_of_a_submissions_content():
    assert submission_digest("VN", [key()]) != submission_digest("VN", [key(contact_intervals=bytes(18))])
