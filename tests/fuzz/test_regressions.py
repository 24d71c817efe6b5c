"""What the fuzzer found, one test each, against the live server: each of these requests used to get INTERNAL,
or a status too large for the client to receive (which it then saw as RESOURCE_EXHAUSTED)."""

from __future__ import annotations

import grpc
import pytest

from exposure.v1 import authority_pb2, distribution_pb2, keys_pb2, sharing_pb2
from matcher.errors import violations_of
from tests.fuzz.conftest import WIDE
from tests.integration.test_service import download
from tests.support.submitters import unique_key


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


def test_a_key_with_a_negative_report_type_is_refused_as_that_key_not_as_an_internal_error(fuzz_server):
    # The report type is an open enum: any int32 arrives, and the idempotency digest once packed it unsigned.
    negative = keys_pb2.DiagnosisKey(
        key_data=bytes(16),
        rolling_start_interval_number=unique_key("n", 1).rolling_start_interval_number,
        rolling_period=144,
        report_type=-1,
    )
    request = authority_pb2.SubmitKeysRequest(submission_id="negative-report-type", keys=[unique_key("n", 1), negative])
    answer = fuzz_server.authority_stub(WIDE).SubmitKeys(request, timeout=10)
    assert answer.accepted == 1 and [r.field for r in answer.rejected] == ["keys[1].report_type"]
    upload = sharing_pb2.SubmitWithCodeRequest(code="2222-2222-2222", keys=[negative])
    assert (
        code_of(lambda: fuzz_server.sharing_stub().SubmitWithCode(upload, timeout=10))
        == grpc.StatusCode.PERMISSION_DENIED
    )


def test_sequence_numbers_past_the_largest_stored_integer_find_nothing(fuzz_server):
    phones = fuzz_server.distribution_stub()
    for after in (2**63 - 1, 2**63, 2**64 - 1):
        listing = phones.ListBatches(distribution_pb2.ListBatchesRequest(after_sequence=after), timeout=10)
        assert list(listing.batches) == [] and not listing.more
    for sequence in (2**63, 2**64 - 1):
        assert code_of(lambda: download(phones, sequence)) == grpc.StatusCode.NOT_FOUND


def test_thirty_keys_breaking_every_rule_get_invalid_argument_with_their_violations(fuzz_server):
    broken = keys_pb2.DiagnosisKey(
        key_data=b"x" * 15,
        rolling_start_interval_number=2**32 - 1,
        rolling_period=4000,
        report_type=77,
        days_since_onset_of_symptoms=-99,
        tx_power_dbm=99,
    )
    request = authority_pb2.SubmitKeysRequest(submission_id="all-wrong", keys=[broken] * 30)
    with pytest.raises(grpc.RpcError) as raised:
        fuzz_server.authority_stub(WIDE).SubmitKeys(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = [violation.field for violation in violations_of(raised.value)]
    assert fields[:3] == ["keys[0].key_data", "keys[0].rolling_period", "keys[0].rolling_start_interval_number"]
    assert "more problems not listed" in raised.value.details()


@pytest.mark.parametrize(
    "request_, expected",
    [
        (
            authority_pb2.IssueCodeRequest(report_type=1, symptom_onset_date="\x00" * 5000),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (authority_pb2.IssueCodeRequest(report_type=1, region="\U0001f600" * 3000), grpc.StatusCode.PERMISSION_DENIED),
    ],
    ids=["a 5000-character onset date", "a 3000-emoji region"],
)
def test_a_refusal_that_echoes_a_huge_field_keeps_its_code(fuzz_server, request_, expected):
    assert code_of(lambda: fuzz_server.authority_stub(WIDE).IssueCode(request_, timeout=10)) == expected
