"""Sharing this phone's own keys after a diagnosis, with the one-time code the health authority gave; or, as a
case's contact (F1) with a RECURSIVE code, only the keys of the days from the contact's exposure on."""

from __future__ import annotations

import datetime as dt

import grpc

from exposure.v1 import config_pb2, keys_pb2, sharing_pb2, sharing_pb2_grpc
from matcher.intervals import day_of
from matcher.model import CONTACT_SHARE_DAYS
from matcher.padding import REQUEST, padded

from .keys import keys_to_share
from .matching import match_new
from .scoring import score
from .store import PhoneStore

CALL_TIMEOUT = 30.0
# A contact is marked in the intervals next to the ones the phone heard something in too: two phones scan at
# their own times, so the other phone may have heard this one in an interval where this one heard nothing yet.
CONTACT_MARGIN_INTERVALS = 1


def contact_bitmap(store: PhoneStore, start: int, period: int) -> bytes:
    """Which intervals of a key's validity had a contact: those in which the phone heard another phone, widened
    by CONTACT_MARGIN_INTERVALS, as the bitmap keys.proto describes (bit j is interval start + j)."""
    heard = store.heard_intervals(start - CONTACT_MARGIN_INTERVALS, start + period + CONTACT_MARGIN_INTERVALS)
    bits = 0
    for interval in heard:
        for j in range(interval - start - CONTACT_MARGIN_INTERVALS, interval - start + CONTACT_MARGIN_INTERVALS + 1):
            if 0 <= j < period:
                bits |= 1 << j
    return bits.to_bytes(-(-period // 8), "little")


class NotAContact(ValueError):
    """This phone cannot share as a case's contact: it has no F1 alert to date the exposure from, or only F2 ones."""


def exposure_day(store: PhoneStore, config: config_pb2.ExposureConfig) -> dt.date:
    """The day of this phone's exposure as a case's contact: its latest F1 alert, after matching what it holds.

    A phone whose alerts are all F2 (near a case's contact) is not a case's contact: it does not share, so that
    warnings stop at F2.
    """
    match_new(store, config)
    alerts = [day for day in score(store, config) if day.alert]
    f1 = [day.day for day in alerts if day.level == "F1"]
    if f1:
        return dt.date.fromisoformat(max(f1))
    if alerts:
        raise NotAContact(
            "this phone's alerts are F2 (near a case's contact): contacts of contacts do not share, warnings stop at F2"
        )
    raise NotAContact("this phone has no F1 alert to date the exposure from: give the day with --since YYYY-MM-DD")


def share_request(
    store: PhoneStore, code: str, now: int, contact_intervals: bool = False, since: dt.date | None = None
) -> sharing_pb2.SubmitWithCodeRequest:
    """The upload: the code and the phone's expired keys of the retention window, nothing else (not its TX
    power: batches do not carry it), unless the user also chose to state in which intervals the phone heard others (``contact_intervals``:
    the authority then publishes only those; it learns when the user was near other phones). Report type and
    days since onset are left out: the code carries the diagnosis. With ``since`` (a case's contact sharing), only
    the keys of that day and the CONTACT_SHARE_DAYS - 1 days after it: the contact's earlier days are never sent.
    Padded to the size of every share and of every decoy (clients/phone/decoy.py), so that its length tells
    neither how many keys it carries nor that it is not a decoy."""
    keys = [
        keys_pb2.DiagnosisKey(
            key_data=tek,
            rolling_start_interval_number=start,
            rolling_period=period,
            contact_intervals=contact_bitmap(store, start, period) if contact_intervals else b"",
        )
        for start, tek, period in keys_to_share(store, now)
        if since is None or 0 <= (day_of(start) - since).days < CONTACT_SHARE_DAYS
    ]
    return padded(sharing_pb2.SubmitWithCodeRequest(code=code, keys=keys), REQUEST)


def share(
    channel: grpc.Channel,
    store: PhoneStore,
    code: str,
    now: int,
    contact_intervals: bool = False,
    since: dt.date | None = None,
) -> sharing_pb2.SubmitWithCodeResponse:
    request = share_request(store, code, now, contact_intervals, since)
    if not request.keys:
        raise ValueError("this phone has no expired key to share yet (keys are shared the day after they are used)")
    return sharing_pb2_grpc.SharingStub(channel).SubmitWithCode(request, timeout=CALL_TIMEOUT)
