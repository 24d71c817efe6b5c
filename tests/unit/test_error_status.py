"""A refusal's status stays small enough for grpcio clients to receive, whatever the request echoed or broke."""

from __future__ import annotations

from google.rpc import error_details_pb2, status_pb2

from matcher.errors import InvalidArgument, PermissionDenied, Violation, to_status

# grpcio clients refuse trailing metadata over 16 KiB and may refuse more than 8 KiB; the status travels there.
SOFT_LIMIT = 8 * 1024


def trailer_bytes(status) -> int:
    """Worst-case size on the wire: the message percent-encoded (3 bytes a byte), the details base64-encoded."""
    message = status.details.encode()
    [(_, details)] = [(k, v) for k, v in status.trailing_metadata if k == "grpc-status-details-bin"]
    return 3 * len(message) + 4 * len(details) // 3 + 64


def violations(status) -> list[error_details_pb2.BadRequest.FieldViolation]:
    [(_, details)] = [(k, v) for k, v in status.trailing_metadata if k == "grpc-status-details-bin"]
    bad_request = error_details_pb2.BadRequest()
    for detail in status_pb2.Status.FromString(details).details:
        detail.Unpack(bad_request)
    return list(bad_request.field_violations)


def test_a_request_breaking_thousands_of_rules_gets_the_first_ones_and_a_count_of_the_rest():
    error = InvalidArgument(
        "the exposure configuration is not valid",
        [
            Violation(f"config.infectiousness_for_days_since_onset[{d}]", "days since onset must be -14..14")
            for d in range(1000, 3000)
        ],
    )
    status = to_status(error)
    listed = violations(status)
    assert 10 < len(listed) < 2000 and listed[0].field == "config.infectiousness_for_days_since_onset[1000]"
    assert status.details.endswith(f"({2000 - len(listed)} more problems not listed)")
    assert trailer_bytes(status) < SOFT_LIMIT


def test_a_message_and_descriptions_echoing_huge_input_are_clipped():
    echoed = "\U0001f600" * 5000
    error = PermissionDenied(
        f"authority 'x' may not submit for region {echoed!r}",
        [Violation("symptom_onset_date", f"{echoed!r} is not a date")],
    )
    status = to_status(error)
    assert status.details.startswith("authority 'x' may not submit for region") and status.details.endswith("\u2026")
    [violation] = violations(status)
    assert violation.description.startswith("'\U0001f600") and len(violation.description) <= 200
    assert trailer_bytes(status) < SOFT_LIMIT


def test_a_small_refusal_is_unchanged():
    status = to_status(
        InvalidArgument("the submission is malformed", [Violation("keys", "at least one key is required")])
    )
    assert status.details == "the submission is malformed"
    assert [(v.field, v.description) for v in violations(status)] == [("keys", "at least one key is required")]
