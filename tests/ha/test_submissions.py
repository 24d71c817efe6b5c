"""Imports are cut into submissions of at most 30 keys whose ids follow from their content."""

from __future__ import annotations

import pytest

from clients.ha.submissions import plan_submissions, submission_id_for
from exposure.v1 import keys_pb2
from matcher.model import MAX_KEYS_PER_SUBMISSION
from matcher.validation import check_submission_id


def keys(count: int, start: int = 2650000) -> list[keys_pb2.DiagnosisKey]:
    return [
        keys_pb2.DiagnosisKey(key_data=i.to_bytes(16, "big"), rolling_start_interval_number=start, report_type=1)
        for i in range(count)
    ]


def test_an_import_is_cut_into_full_submissions_and_one_for_the_rest():
    planned = plan_submissions(keys(140), authority="vn-moh", region="VN")
    assert [len(p.request.keys) for p in planned] == [30, 30, 30, 30, 20]
    assert [p.indices[0] for p in planned] == [0, 30, 60, 90, 120]
    assert [i for p in planned for i in p.indices] == list(range(140))
    assert all(p.request.region == "VN" for p in planned)


def test_the_same_import_gets_the_same_ids_every_time():
    first = [p.submission_id for p in plan_submissions(keys(70), authority="vn-moh", region="VN")]
    again = [p.submission_id for p in plan_submissions(keys(70), authority="vn-moh", region="VN")]
    assert first == again


def test_ids_differ_between_chunks_and_with_any_change_of_content_authority_or_region():
    base = submission_id_for("vn-moh", "VN", keys(30))
    others = {
        submission_id_for("vn-moh", "VN", keys(30, start=2650001)),
        submission_id_for("vn-moh", "VN", keys(29)),
        submission_id_for("other", "VN", keys(30)),
        submission_id_for("vn-moh", "", keys(30)),
        submission_id_for("vn-moh", "VN", list(reversed(keys(30)))),
    }
    assert base not in others and len(others) == 5
    planned = plan_submissions(keys(90), authority="vn-moh", region="VN")
    assert len({p.submission_id for p in planned}) == 3


def test_a_days_since_onset_of_zero_is_not_the_same_as_none():
    with_onset = keys(1)
    with_onset[0].days_since_onset_of_symptoms = 0
    assert submission_id_for("a", "", with_onset) != submission_id_for("a", "", keys(1))


def test_every_id_passes_the_servers_submission_id_rule():
    for planned in plan_submissions(keys(61), authority="a very long authority name " * 10, region="VN"):
        assert check_submission_id(planned.submission_id) == []
        assert planned.submission_id.startswith("import-") and len(planned.submission_id) == 31


@pytest.mark.parametrize("size", [0, MAX_KEYS_PER_SUBMISSION + 1])
def test_a_chunk_size_the_server_would_refuse_is_an_error(size):
    with pytest.raises(ValueError, match=r"1..30"):
        plan_submissions(keys(3), authority="a", size=size)


def test_no_keys_make_no_submissions():
    assert plan_submissions([], authority="a") == []
