"""Sharing this phone's own keys after a diagnosis, with the one-time code the health authority gave."""

from __future__ import annotations

import grpc

from exposure.v1 import keys_pb2, sharing_pb2, sharing_pb2_grpc

from .keys import keys_to_share
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


def share_request(
    store: PhoneStore, code: str, now: int, contact_intervals: bool = False
) -> sharing_pb2.SubmitWithCodeRequest:
    """The upload: the code and the phone's expired keys of the retention window, nothing else (not its TX
    power: batches do not carry it), unless the user also chose to state in which intervals the phone heard others (``contact_intervals``:
    the authority then publishes only those; it learns when the user was near other phones). Report type and
    days since onset are left out: the code carries the diagnosis."""
    keys = [
        keys_pb2.DiagnosisKey(
            key_data=tek, rolling_start_interval_number=start, rolling_period=period,
            contact_intervals=contact_bitmap(store, start, period) if contact_intervals else b"",
        )
        for start, tek, period in keys_to_share(store, now)
    ]
    return sharing_pb2.SubmitWithCodeRequest(code=code, keys=keys)


def share(
    channel: grpc.Channel, store: PhoneStore, code: str, now: int, contact_intervals: bool = False
) -> sharing_pb2.SubmitWithCodeResponse:
    request = share_request(store, code, now, contact_intervals)
    if not request.keys:
        raise ValueError("this phone has no expired key to share yet (keys are shared the day after they are used)")
    return sharing_pb2_grpc.SharingStub(channel).SubmitWithCode(request, timeout=CALL_TIMEOUT)
