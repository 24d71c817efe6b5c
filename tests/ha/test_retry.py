"""Transient failures are retried with bounded, jittered waits; everything else is not retried."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from clients.ha.retry import (
    RetryPolicy,
    backoff_delay,
    call_with_retries,
    is_transient,
    retry_delay,
    server_retry_delay,
)

POLICY = RetryPolicy(max_attempts=5, initial_backoff=0.5, multiplier=2.0, max_backoff=4.0, max_server_delay=60.0)
Code = grpc.StatusCode


@pytest.mark.parametrize("code", [Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.RESOURCE_EXHAUSTED])
def test_transient_codes_are_retried(code):
    assert is_transient(code)
    assert retry_delay(code, 1, POLICY, jitter=0.0) == 0.25


@pytest.mark.parametrize(
    "code",
    [Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED, Code.PERMISSION_DENIED, Code.ALREADY_EXISTS, Code.NOT_FOUND,
     Code.FAILED_PRECONDITION, Code.INTERNAL, Code.UNKNOWN, Code.CANCELLED, Code.UNIMPLEMENTED],
)  # fmt: skip
def test_other_codes_are_not_retried(code):
    assert not is_transient(code)
    assert retry_delay(code, 1, POLICY, jitter=0.5) is None


def test_the_last_attempt_is_not_followed_by_another():
    assert retry_delay(Code.UNAVAILABLE, 4, POLICY, jitter=0.5) is not None
    assert retry_delay(Code.UNAVAILABLE, 5, POLICY, jitter=0.5) is None


@pytest.mark.parametrize("attempt", range(1, 9))
def test_waits_grow_exponentially_within_half_to_all_of_a_capped_ceiling(attempt):
    ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
    low, high = backoff_delay(attempt, POLICY, 0.0), backoff_delay(attempt, POLICY, 0.999999)
    assert low == ceiling / 2
    assert ceiling / 2 < high < ceiling
    assert low <= backoff_delay(attempt, POLICY, 0.37) <= high


def test_a_delay_the_server_asks_for_replaces_the_backoff_up_to_the_cap():
    assert retry_delay(Code.RESOURCE_EXHAUSTED, 1, POLICY, jitter=0.9, server_delay=7.5) == 7.5
    assert retry_delay(Code.RESOURCE_EXHAUSTED, 1, POLICY, jitter=0.9, server_delay=3600) == 60.0
    assert retry_delay(Code.INVALID_ARGUMENT, 1, POLICY, jitter=0.9, server_delay=1.0) is None


def status_with_retry_info(seconds: int, nanos: int) -> status_pb2.Status:
    packed = any_pb2.Any()
    packed.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos)))
    other = any_pb2.Any()
    other.Pack(error_details_pb2.BadRequest())
    return status_pb2.Status(code=8, message="slow down", details=[other, packed])


def test_retry_info_is_read_from_the_status_details():
    assert server_retry_delay(status_with_retry_info(2, 500_000_000)) == 2.5
    assert server_retry_delay(status_pb2.Status(code=14)) is None
    assert server_retry_delay(None) is None


class Failure(grpc.RpcError):
    """A failed call as the code under test sees one: a status code (and no rich status)."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def test_a_call_is_retried_until_it_succeeds_and_waits_between_tries():
    outcomes = [Failure(Code.UNAVAILABLE), Failure(Code.DEADLINE_EXCEEDED), "answer"]
    timeouts, waits = [], []

    def call(timeout: float) -> str:
        timeouts.append(timeout)
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert call_with_retries(call, POLICY, sleep=waits.append, jitter=lambda: 0.0) == "answer"
    assert waits == [0.25, 0.5]
    assert timeouts == [POLICY.call_timeout] * 3


def test_a_call_that_keeps_failing_gives_up_with_the_last_error():
    waits = []

    def call(timeout: float) -> None:
        raise Failure(Code.UNAVAILABLE)

    with pytest.raises(Failure):
        call_with_retries(call, POLICY, sleep=waits.append, jitter=lambda: 0.0)
    assert waits == [0.25, 0.5, 1.0, 2.0]


def test_a_permanent_failure_is_raised_at_once():
    waits = []

    def call(timeout: float) -> None:
        raise Failure(Code.PERMISSION_DENIED)

    with pytest.raises(Failure):
        call_with_retries(call, POLICY, sleep=waits.append)
    assert waits == []
