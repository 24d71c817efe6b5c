"""Sharing this phone's own keys after a diagnosis, with the one-time code the health authority gave."""

from __future__ import annotations

import grpc

from exposure.v1 import keys_pb2, sharing_pb2, sharing_pb2_grpc

from .keys import keys_to_share, tx_power
from .store import PhoneStore

CALL_TIMEOUT = 30.0


def share_request(store: PhoneStore, code: str, now: int) -> sharing_pb2.SubmitWithCodeRequest:
    """The upload: the code and the phone's expired keys of the retention window with its TX power, nothing
    else. Report type and days since onset are left out: the code carries the diagnosis."""
    power = tx_power(store)
    keys = [
        keys_pb2.DiagnosisKey(
            key_data=tek, rolling_start_interval_number=start, rolling_period=period, tx_power_dbm=power
        )
        for start, tek, period in keys_to_share(store, now)
    ]
    return sharing_pb2.SubmitWithCodeRequest(code=code, keys=keys)


def share(channel: grpc.Channel, store: PhoneStore, code: str, now: int) -> sharing_pb2.SubmitWithCodeResponse:
    request = share_request(store, code, now)
    if not request.keys:
        raise ValueError("this phone has no expired key to share yet (keys are shared the day after they are used)")
    return sharing_pb2_grpc.SharingStub(channel).SubmitWithCode(request, timeout=CALL_TIMEOUT)
