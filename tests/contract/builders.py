"""What the contract tests build: keys, submissions, a fixed clock, and a tiny publisher whose batch body lists
the key data it holds (the store does not care what a body is, so the tests can read back what was published)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

from matcher.model import DiagnosisKey, ReportType, Submission
from matcher.store import BatchCommit, LockLost, Store
from tests.conftest import VECTOR_DAY_START

DAY = 86_400
TODAY = 2642976  # the interval that starts VECTOR_DAY_START
NOW = VECTOR_DAY_START + 12 * 3600  # noon on 2020-04-02: a historical clock, as simulations use
RETENTION = 14 * DAY
AUTHORITY = "health.example"
LEASE = 30.0


def key(
    n: int,
    *,
    days_ago: int = 1,
    period: int = 144,
    report_type: ReportType = ReportType.CONFIRMED_TEST,
    days_since_onset: int | None = None,
    contact_intervals: bytes | None = None,
) -> DiagnosisKey:
    """Key number ``n`` of the day ``days_ago`` before TODAY (yesterday's keys are publishable at NOW)."""
    return DiagnosisKey(
        key_data=n.to_bytes(16, "big"),
        rolling_start=TODAY - 144 * days_ago,
        rolling_period=period,
        report_type=report_type,
        days_since_onset=days_since_onset,
        contact_intervals=contact_intervals,
    )


def submission(
    submission_id: str, keys: Iterable[DiagnosisKey], *, authority: str = AUTHORITY, region: str = "VN"
) -> Submission:
    keys = tuple(keys)
    digest = hashlib.sha256(region.encode() + b"".join(k.fingerprint() + bytes([k.report_type]) for k in keys))
    return Submission(authority, submission_id, region, keys, digest.digest())


def response_for(submission_id: str) -> bytes:
    return f"response to {submission_id}".encode()


def submit(store: Store, sub: Submission, *, now: int = NOW, code_hash: bytes | None = None):
    return store.submit(
        sub, response=response_for(sub.submission_id), now=now, retention_seconds=RETENTION, code_hash=code_hash
    )


def encode_body(keys: Iterable[DiagnosisKey], *, padding: int = 0) -> bytes:
    """One line of hex key data per key, then ``padding`` bytes of a comment line (a body as big as wanted)."""
    lines = [k.key_data.hex().encode() for k in keys]
    return b"\n".join(lines + ([b"#" * padding] if padding else []))


def publish_once(store: Store, owner: str, *, now: int = NOW, limit: int = 10_000, lease: float = LEASE) -> int | None:
    """One publisher round: lock, read pending, commit a batch of them, unlock.

    The batch's sequence, or None when the lock is held elsewhere, nothing is pending or the lock was lost.
    """
    fence = store.acquire_publish_lock(owner, lease)
    if fence is None:
        return None
    try:
        pending = store.pending_keys(now=now, limit=limit)
        if not pending:
            return None
        sequence = store.last_sequence() + 1
        store.commit_batch(
            BatchCommit(
                owner=owner,
                fence=fence,
                sequence=sequence,
                published_at=now,
                signed_header=f"header {sequence}".encode(),
                body=encode_body(p.key for p in pending),
                key_ids=[p.id for p in pending],
                now=now,
                retention_seconds=RETENTION,
            )
        )
        return sequence
    except LockLost:
        return None
    finally:
        store.release_publish_lock(owner)


def published_key_data(store: Store) -> Counter[bytes]:
    """How many batches each key's data was published in."""
    published: Counter[bytes] = Counter()
    for batch in store.list_batches(after=0, limit=1_000_000):
        lines = store.read_body(batch.sequence, 0, batch.body_size).split(b"\n")
        published.update(bytes.fromhex(line.decode()) for line in lines if line and not line.startswith(b"#"))
    return published


def pending_key_data(store: Store, *, now: int = NOW) -> Counter[bytes]:
    return Counter(p.key.key_data for p in store.pending_keys(now=now, limit=1_000_000))
