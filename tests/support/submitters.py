"""Authorities submitting to a real server from threads, and the ledger of what the server acknowledged.

Every submission carries keys no other submission has (derived from a label, the authority and a counter), so
that "acknowledged keys" and "keys in published batches" can be compared one for one. A submission whose call
failed is not acknowledged: the server may or may not have stored it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from exposure.v1 import authority_pb2, authority_pb2_grpc, keys_pb2
from matcher.model import ReportType
from tests.integration.harness import TODAY

# Codes after which the same submission may be sent again unchanged: the server was away or busy. Resending is
# safe because a submission id with the same content is answered as the first time.
RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


def unique_key(label: str, day: int) -> keys_pb2.DiagnosisKey:
    """A key nobody else submits: 16 bytes derived from ``label``, for the day ``day`` days before today."""
    return keys_pb2.DiagnosisKey(
        key_data=hashlib.sha256(f"{label}/{day}".encode()).digest()[:16],
        rolling_start_interval_number=TODAY - 144 * day,
        rolling_period=144,
        report_type=ReportType.CONFIRMED_TEST,
        days_since_onset_of_symptoms=0,
    )


def submission(label: str, days: tuple[int, ...] = (1, 2)) -> authority_pb2.SubmitKeysRequest:
    return authority_pb2.SubmitKeysRequest(
        submission_id=label.replace("/", ":"), region="VN", keys=[unique_key(label, d) for d in days]
    )


@dataclass
class Ledger:
    """Submissions sent, and which of them the server acknowledged (thread-safe)."""

    acknowledged: list[authority_pb2.SubmitKeysRequest] = field(default_factory=list)
    unanswered: list[authority_pb2.SubmitKeysRequest] = field(default_factory=list)
    refused: list[tuple[str, grpc.StatusCode]] = field(default_factory=list)
    accepted_keys: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, request: authority_pb2.SubmitKeysRequest, response: authority_pb2.SubmitKeysResponse) -> None:
        with self._lock:
            self.acknowledged.append(request)
            self.accepted_keys += response.accepted

    def lose(self, request: authority_pb2.SubmitKeysRequest) -> None:
        with self._lock:
            self.unanswered.append(request)

    def refuse(self, request: authority_pb2.SubmitKeysRequest, code: grpc.StatusCode) -> None:
        with self._lock:
            self.refused.append((request.submission_id, code))

    def keys(self, which: str = "acknowledged") -> list[keys_pb2.DiagnosisKey]:
        with self._lock:
            return [key for request in getattr(self, which) for key in request.keys]


def submit_until(
    stubs: list[authority_pb2_grpc.AuthorityStub],
    label: str,
    ledger: Ledger,
    stop: threading.Event,
    *,
    retry: bool,
    on_error: Callable[[grpc.RpcError], None] = lambda error: None,
) -> None:
    """Submits fresh submissions, round-robin over ``stubs``, until ``stop`` is set.

    With ``retry``, a submission that failed with a retryable code is sent again (to the next stub) until it is
    acknowledged, even after ``stop``, as a real client would; without, the first failure ends the loop and the
    submission is recorded as unanswered.
    """
    n = 0
    while not stop.is_set():
        n += 1
        request = submission(f"{label}/{n}")
        attempt = 0
        while True:
            stub = stubs[(n + attempt) % len(stubs)]
            try:
                ledger.ack(request, stub.SubmitKeys(request, timeout=20))
                break
            except grpc.RpcError as error:
                on_error(error)
                if not retry:
                    ledger.lose(request)
                    return
                if error.code() not in RETRYABLE:
                    ledger.refuse(request, error.code())
                    break
                attempt += 1
                time.sleep(min(0.05 * attempt, 0.5))


class Worker(threading.Thread):
    """A daemon thread whose exception is raised again in the test that joins it."""

    def __init__(self, target: Callable[..., object], *args: object, **kwargs: object) -> None:
        super().__init__(daemon=True)
        self._call = lambda: target(*args, **kwargs)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._call()
        except BaseException as error:
            self.error = error

    def finish(self, timeout: float = 120.0) -> None:
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not finish within {timeout} s"
        if self.error is not None:
            raise self.error


def started(*workers: Worker) -> list[Worker]:
    for worker in workers:
        worker.start()
    return list(workers)


def health(channel: grpc.Channel, service: str = "") -> int | None:
    """The health status the server reports, or None when it does not answer."""
    try:
        return (
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        )
    except grpc.RpcError:
        return None


def wait_for_health(channel: grpc.Channel, wanted: int, timeout: float = 30.0, service: str = "") -> None:
    """Waits until the server reports ``wanted`` (a HealthCheckResponse status); AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = health(channel, service)
        if status == wanted:
            return
        time.sleep(0.1)
    name = health_pb2.HealthCheckResponse.ServingStatus.Name
    raise AssertionError(f"health is {None if status is None else name(status)}, not {name(wanted)}, after {timeout} s")


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def threads_of(pid: int) -> int:
    """The number of threads of a process (Linux /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no Threads line")
