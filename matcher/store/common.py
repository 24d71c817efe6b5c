"""Rules both backends share, defined once: the retention reference of a key and the errors a caller sees."""

from __future__ import annotations

import secrets

from ..errors import AlreadyExists, PermissionDenied, Violation
from ..intervals import interval_start
from ..model import DiagnosisKey


def key_ends_at(key: DiagnosisKey) -> int:
    """Unix seconds at which a key stopped being valid: the time its retention counts from.

    A key (and the fingerprint that keeps it from being stored twice) is kept until ``ends_at + retention``:
    exactly as long as validation would still accept the same key again.
    """
    return interval_start(key.end_interval)


def new_case_id() -> str:
    """A case id for the keys of one submission: random, so that nothing about the submitter can be read from it
    or recomputed (a hash of the authority and the submission id could be, by the authority). 64 bits: two
    submissions pending at once share one with probability far below anything the anonymity count could notice.
    """
    return secrets.token_hex(8)


def submission_id_taken() -> AlreadyExists:
    return AlreadyExists(
        "this submission id was already used with other content",
        [Violation("submission_id", "already used by an earlier submission with other keys")],
    )


def invalid_code() -> PermissionDenied:
    # One message for unknown, used and expired codes, so that codes cannot be probed.
    return PermissionDenied("the upload code is unknown, used or expired")
