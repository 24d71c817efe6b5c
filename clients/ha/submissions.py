"""An import cut into submissions the server takes: at most 30 keys each, each with an id derived from its
content, so that running the same import again (after a crash, a timeout or by mistake) repeats the same
submissions and the server answers them from its idempotency record instead of storing anything twice.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from exposure.v1 import authority_pb2, keys_pb2
from matcher.model import MAX_KEYS_PER_SUBMISSION
from matcher.validation import submission_digest

SUBMISSION_ID_PREFIX = "import-"
_ID_HEX_DIGITS = 24  # 96 bits: no two different chunks of one authority will ever share an id


@dataclass(frozen=True)
class PlannedSubmission:
    """One SubmitKeys request, and where its keys are in the list it was cut from."""

    indices: tuple[int, ...]
    request: authority_pb2.SubmitKeysRequest

    @property
    def submission_id(self) -> str:
        return self.request.submission_id


def submission_id_for(authority: str, region: str, keys: Sequence[keys_pb2.DiagnosisKey]) -> str:
    """``import-`` and 24 hex digits of SHA-256 over the authority, the region and the keys' canonical digest
    (matcher.validation.submission_digest, the digest the server compares a repeated id against)."""
    digest = hashlib.sha256()
    for text in (authority, region):
        encoded = text.encode()
        digest.update(struct.pack("<H", len(encoded)) + encoded)
    digest.update(submission_digest(region, keys))
    return SUBMISSION_ID_PREFIX + digest.hexdigest()[:_ID_HEX_DIGITS]


def plan_submissions(
    keys: Sequence[keys_pb2.DiagnosisKey],
    *,
    authority: str,
    region: str = "",
    size: int = MAX_KEYS_PER_SUBMISSION,
) -> list[PlannedSubmission]:
    """``keys`` in order, in chunks of at most ``size``, each a request with its content-derived id."""
    if not 1 <= size <= MAX_KEYS_PER_SUBMISSION:
        raise ValueError(f"a submission holds 1..{MAX_KEYS_PER_SUBMISSION} keys, not {size}")
    planned = []
    for first in range(0, len(keys), size):
        chunk = keys[first : first + size]
        request = authority_pb2.SubmitKeysRequest(
            submission_id=submission_id_for(authority, region, chunk), keys=chunk, region=region
        )
        planned.append(PlannedSubmission(tuple(range(first, first + len(chunk))), request))
    return planned
