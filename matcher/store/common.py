"""Rules both backends share, defined once: the retention reference of a key and the errors a caller sees."""

from __future__ import annotations

from ..errors import AlreadyExists, PermissionDenied, Violation
from ..intervals import interval_start
from ..model import DiagnosisKey


def key_ends_at(key: DiagnosisKey) -> int:
    """Unix seconds at which a key stopped being valid: the time its retention counts from.

    A key (and the fingerprint that keeps it from being stored twice) is kept until ``ends_at + retention``:
    exactly as long as validation would still accept the same key again.
    """
    return interval_start(key.end_interval)


def submission_id_taken() -> AlreadyExists:
    return AlreadyExists(
        "this submission id was already used with other content",
        [Violation("submission_id", "already used by an earlier submission with other keys")],
    )


def invalid_code() -> PermissionDenied:
    # One message for unknown, used and expired codes, so that codes cannot be probed.
    return PermissionDenied("the upload code is unknown, used or expired")
