"""Rules both backends share, defined once: the columns of a pending item, its case id and the errors a caller
sees."""

from __future__ import annotations

import secrets

from .. import codes
from ..errors import AlreadyExists, PermissionDenied, Violation
from ..model import DiagnosisKey, ReportType, VenueHour

# A pending item is a diagnosis key or a warned venue hour. Both stores keep them in one pending structure, in the
# key's columns: a venue hour is its identifier as the key data, its hour number as the start, and a period of 0,
# which no key has (validation gives every key 1..144).
PendingItem = DiagnosisKey | VenueHour


def item_of(
    key_data: bytes, start: int, period: int, report_type: int, days: int | None, contacts: bytes | None
) -> PendingItem:
    """A pending item from the columns both stores keep."""
    if period == 0:
        return VenueHour(key_data, start)
    return DiagnosisKey(key_data, start, period, ReportType(report_type), days, contacts)


def columns_of(item: PendingItem) -> tuple[bytes, int, int, int, int | None, bytes | None]:
    """The columns of a pending item: key data, start, period, report type, days since onset, contact intervals."""
    if isinstance(item, VenueHour):
        return item.identifier, item.hour, 0, 0, None, None
    return (
        item.key_data,
        item.rolling_start,
        item.rolling_period,
        int(item.report_type),
        item.days_since_onset,
        (item.contact_intervals),
    )


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
    return PermissionDenied(codes.REFUSED)
