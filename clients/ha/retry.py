"""Which failed calls are tried again, and how long to wait first.

Only transient failures are retried: the server or the network is down or slow (UNAVAILABLE,
DEADLINE_EXCEEDED) or asks the caller to slow down (RESOURCE_EXHAUSTED). Retrying a SubmitKeys call that may
have reached the server is safe because submission ids are idempotent. Waits grow exponentially with "equal
jitter" (half fixed, half random), so that many clients failing together do not come back together; a delay
the server asks for in google.rpc.RetryInfo is honoured instead. Everything here is a pure function of its
arguments except :func:`call_with_retries`, which takes the sleep and the randomness as parameters.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

T = TypeVar("T")

TRANSIENT_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of the retries; all times in seconds."""

    max_attempts: int = 5
    initial_backoff: float = 0.5
    multiplier: float = 2.0
    max_backoff: float = 20.0
    # A RetryInfo delay from the server is honoured up to this, so a misconfigured server cannot park a client.
    max_server_delay: float = 300.0
    # The deadline of each call: a server that hangs counts as a transient failure, not as a hung import.
    call_timeout: float = 30.0


DEFAULT_POLICY = RetryPolicy()


def is_transient(code: grpc.StatusCode) -> bool:
    return code in TRANSIENT_CODES


def backoff_delay(attempt: int, policy: RetryPolicy, jitter: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based); ``jitter`` is uniform in [0, 1).

    The ceiling is ``initial * multiplier**(attempt-1)``, capped at ``max_backoff``; the wait is in
    [ceiling/2, ceiling).
    """
    ceiling = min(policy.max_backoff, policy.initial_backoff * policy.multiplier ** (attempt - 1))
    return ceiling / 2 + ceiling / 2 * jitter


def retry_delay(
    code: grpc.StatusCode,
    attempt: int,
    policy: RetryPolicy,
    *,
    jitter: float,
    server_delay: float | None = None,
) -> float | None:
    """Seconds to wait before trying again after attempt ``attempt`` failed with ``code``; None to give up."""
    if not is_transient(code) or attempt >= policy.max_attempts:
        return None
    if server_delay is not None:
        return min(max(server_delay, 0.0), policy.max_server_delay)
    return backoff_delay(attempt, policy, jitter)


def server_retry_delay(status: status_pb2.Status | None) -> float | None:
    """The delay a google.rpc.RetryInfo in the status details asks for, in seconds; None when there is none."""
    for detail in status.details if status else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


def status_of(error: grpc.RpcError) -> status_pb2.Status | None:
    """The rich status (google.rpc.Status with details) of a failed call, when the server sent one."""
    if not isinstance(error, grpc.Call):
        return None  # not a call's error: no trailing metadata to read
    try:
        return rpc_status.from_call(error)
    except ValueError:
        return None


def call_with_retries(
    call: Callable[[float], T],
    policy: RetryPolicy = DEFAULT_POLICY,
    *,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
    on_retry: Callable[[grpc.StatusCode, float], None] | None = None,
) -> T:
    """``call(timeout)`` until it succeeds or fails for good; the last error is re-raised as it came."""
    attempt = 1
    while True:
        try:
            return call(policy.call_timeout)
        except grpc.RpcError as error:
            code = error.code()
            delay = retry_delay(
                code, attempt, policy, jitter=jitter(), server_delay=server_retry_delay(status_of(error))
            )
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(code, delay)
            sleep(delay)
            attempt += 1
