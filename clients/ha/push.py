"""Sending keys to the server: the submissions of an import, one after the other, each retried while the
failure is transient, and the server's answers added up into one summary.

This is what the simulator calls with its own channel. It sends the keys it is given as they are; the command
line checks them with the server's rules first (:mod:`.local_check`) and passes only the valid ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from exposure.v1 import authority_pb2, authority_pb2_grpc, keys_pb2
from matcher.errors import Violation, violations_of

from .channel import describe_rpc_error
from .local_check import key_index_of, reasons_by_index
from .retry import DEFAULT_POLICY, RetryPolicy, call_with_retries
from .submissions import PlannedSubmission, plan_submissions


@dataclass(frozen=True, slots=True)
class PushSummary:
    """What the server said about an import.

    ``rejected`` pairs the index of a key in the list given to :func:`push_keys` with the reason,
    ``"<field>: <description>"`` per problem, joined with "; ". ``replayed`` counts submissions the server had
    already taken (the same import run again).
    """

    submissions: int
    accepted: int
    embargoed: int
    replayed: int
    rejected: tuple[tuple[int, str], ...]


class PushError(Exception):
    """The import stopped before its end; ``done`` sums up the submissions the server had answered."""

    def __init__(self, message: str, done: PushSummary) -> None:
        super().__init__(message)
        self.done = done


def push_keys(
    channel: grpc.Channel,
    keys: Sequence[keys_pb2.DiagnosisKey],
    *,
    authority: str,
    region: str = "",
    policy: RetryPolicy = DEFAULT_POLICY,
    progress: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushSummary:
    """Submits ``keys`` over ``channel`` (see :func:`.channel.authority_channel`) in submissions of at most 30.

    ``authority`` and ``region`` go into the content-derived submission ids (the server takes the authority
    from the client certificate). ``progress(done, total)`` is called after each submission. Raises PushError
    when a failure is not transient, or stays after the policy's attempts; the submissions already answered
    stay stored, and pushing the same keys again repeats them harmlessly.
    """
    stub = authority_pb2_grpc.AuthorityStub(channel)
    planned = plan_submissions(keys, authority=authority, region=region)
    totals = _Totals()
    for number, submission in enumerate(planned, start=1):
        try:

            def submit(
                timeout: float, request: authority_pb2.SubmitKeysRequest = submission.request
            ) -> authority_pb2.SubmitKeysResponse:
                return stub.SubmitKeys(request, timeout=timeout)

            response = call_with_retries(submit, policy, sleep=sleep)
        except grpc.RpcError as error:
            refused = _refused_keys(error, submission)
            if refused is None:
                raise PushError(
                    f"submission {number} of {len(planned)} ({submission.submission_id}) failed: "
                    f"{describe_rpc_error(error)}; {totals.accepted} keys were accepted before it, "
                    f"and running the same import again is safe",
                    totals.summary(),
                ) from None
            totals.add_rejections(submission, refused)
        else:
            totals.add(submission, response)
        if progress is not None:
            progress(number, len(planned))
    return totals.summary()


def _refused_keys(error: grpc.RpcError, submission: PlannedSubmission) -> list[tuple[int, Violation]] | None:
    """The per-key problems of a submission the server refused because none of its keys was valid.

    The server refuses such a submission as a whole (it stores nothing), but every violation names one of its
    keys: that is a rejection of those keys, not a reason to stop the import. Anything else (a malformed
    request, an unknown region) is None.
    """
    if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
        return None
    refused = []
    for violation in violations_of(error):
        index = key_index_of(violation.field)
        if index is None or index >= len(submission.indices):
            return None
        refused.append((index, violation))
    return refused or None


class _Totals:
    """The answers so far."""

    def __init__(self) -> None:
        self.submissions = self.accepted = self.embargoed = self.replayed = 0
        self.rejected: list[tuple[int, str]] = []

    def add(self, submission: PlannedSubmission, response: authority_pb2.SubmitKeysResponse) -> None:
        problems = [(r.index, Violation(r.field, r.reason)) for r in response.rejected]
        if any(index >= len(submission.indices) for index, _ in problems):
            raise PushError(
                f"the server's answer to {submission.submission_id} rejects a key the submission does not have",
                self.summary(),
            )
        self.accepted += response.accepted
        self.embargoed += response.embargoed
        self.replayed += response.replayed
        self.add_rejections(submission, problems)

    def add_rejections(self, submission: PlannedSubmission, problems: list[tuple[int, Violation]]) -> None:
        self.submissions += 1
        for index, reason in sorted(reasons_by_index(problems).items()):
            self.rejected.append((submission.indices[index], reason))

    def summary(self) -> PushSummary:
        return PushSummary(self.submissions, self.accepted, self.embargoed, self.replayed, tuple(self.rejected))
