"""Decoy shares: cover traffic, so that a phone that shares its keys looks on the wire like any other phone.

A share is the one call a phone makes only after its owner was diagnosed, and TLS hides its content, not that it
happened. So every phone, at random times, sends a decoy: a SubmitWithCode request marked as a decoy inside the
encrypted message, padded to the size of every share (matcher/padding.py), which the server answers like an
accepted share and stores nothing of (GAEN key servers and the Corona-Warn-App do the same). docs/privacy.md says
what a network observer still sees.

A decoy is made of nothing the phone holds: a made-up code and random keys. It takes the time and nothing else.
"""

from __future__ import annotations

import math
import random
import secrets

import grpc

from exposure.v1 import keys_pb2, sharing_pb2, sharing_pb2_grpc
from matcher import codes
from matcher.intervals import INTERVALS_PER_DAY, interval_number
from matcher.model import KEY_LENGTH, MAX_ROLLING_PERIOD
from matcher.padding import REQUEST, padded

from .store import PhoneStore

# Decoys a phone sends a day on average. Each costs the server a share's reads and the phone one call of 2.5 KB
# (padded request and answer); many more decoys than shares is the point: at 0.2 a day, 10 million phones send
# 2 million a day (23 a second), against a few thousand real shares.
DEFAULT_DECOYS_PER_DAY = 0.2
# As many keys as a phone shares after two weeks of use (the padding hides the number anyway): the server validates
# a decoy's keys as a share's, and this makes that work a share's too.
DECOY_KEYS = 14
NEXT_DECOY = "next_decoy_at"  # the phone's store: unix seconds of the next decoy of the schedule
CALL_TIMEOUT = 30.0

_random = random.SystemRandom()


def decoy_request(now: int) -> sharing_pb2.SubmitWithCodeRequest:
    """A decoy share: a made-up code as a person would type it, DECOY_KEYS random keys of the past days, padded."""
    today = interval_number(now) // INTERVALS_PER_DAY * INTERVALS_PER_DAY
    keys = [
        keys_pb2.DiagnosisKey(
            key_data=secrets.token_bytes(KEY_LENGTH),
            rolling_start_interval_number=today - day * INTERVALS_PER_DAY,
            rolling_period=MAX_ROLLING_PERIOD,
        )
        for day in range(1, DECOY_KEYS + 1)
    ]
    request = sharing_pb2.SubmitWithCodeRequest(code=codes.display(codes.new_code()), keys=keys, decoy=True)
    return padded(request, REQUEST)


def send_decoy(channel: grpc.Channel, now: int) -> sharing_pb2.SubmitWithCodeResponse:
    return sharing_pb2_grpc.SharingStub(channel).SubmitWithCode(decoy_request(now), timeout=CALL_TIMEOUT)


def next_interval_seconds(per_day: float, rng: random.Random = _random) -> float:
    """Seconds to the next decoy: exponentially distributed, so that decoys form a Poisson process of ``per_day``
    a day, whose times say nothing about one another (nor about when the phone syncs)."""
    return -math.log(1.0 - rng.random()) * 86400 / per_day


def decoy_due(store: PhoneStore, now: int, per_day: float, rng: random.Random = _random) -> bool:
    """Whether the schedule has a decoy due at ``now``; if so, the next one is drawn. The first call only draws.
    A phone that was off for days sends one decoy, not the ones it missed: a burst would stand out."""
    if per_day <= 0:
        return False
    due_at = store.get_int(NEXT_DECOY, 0)
    if due_at and now < due_at:
        return False
    store.put(NEXT_DECOY, str(int(now + next_interval_seconds(per_day, rng))).encode())
    return bool(due_at)
