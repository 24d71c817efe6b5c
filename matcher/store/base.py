"""The storage interface: everything the service keeps, behind one small protocol with two real backends.

- ``sqlite:PATH``: the embedded default (matcher/store/sqlite.py).
- ``redis://HOST:PORT/DB``: production and scale-out (matcher/store/redis.py).

Rules every backend keeps (tests/contract/ checks them on both):

- Time is passed in as unix seconds (``now``); a backend never reads the clock for data. Simulated and
  historical clocks work because expiry is computed relative to ``now``. The publish lock is the exception: its
  lease is operational and runs on real time (the backend's own clock), whatever ``now`` says.
- Every write is atomic: a submission's keys and its idempotency record appear together or not at all; a batch,
  its sequence number and the removal of its keys from pending appear together or not at all.
- Every record has an expiry (retention): nothing is kept forever.
- No IP address, client identifier or authority name is stored with a key. The case a pending key belongs to is
  a random id that only groups the keys of one submission, and it leaves with the pending row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import Unavailable
from ..model import DiagnosisKey, Submission, VenueHour

# The publish lock's default lease (acquire_publish_lock). A publisher that dies holding the lock keeps the other
# replicas from publishing until the lease runs out; one that outlives it cannot commit (fencing).
LEASE_SECONDS = 300.0


class StoreError(Unavailable):
    """The store cannot be reached or answered with an error; the call may be retried (gRPC UNAVAILABLE).

    Callers over gRPC get a generic message; the detail (which may name a file or a host) goes to the log and to
    the operator's command line only.
    """

    detail: str

    def __init__(self, detail: str) -> None:
        super().__init__("the service's storage is unavailable; try again later")
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class LockLost(Exception):
    """The publisher's lock expired or was taken over (its fencing token is stale): the batch was not committed."""


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What a submission did.

    ``replayed`` is the stored response of an earlier submission with the same id and content (nothing new was
    stored); otherwise ``stored`` keys were new and ``duplicates`` were already held from other submissions.
    """

    replayed: bytes | None
    stored: int = 0
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class PendingKey:
    """A stored key (or a warned venue hour) waiting for a batch; ``id`` is opaque and names it in
    ``commit_batch``.

    ``case`` is shared by the keys one submission stored (one SubmitKeys or SubmitWithCode call: one person) and
    differs between submissions. It is random, so it says nothing about the authority, the submission id or the
    phone; the publisher counts distinct cases to size a section's anonymity set, and the value goes with the
    pending row when the key is published. ``received_at`` is the ``now`` of that submission.
    """

    id: str
    key: DiagnosisKey | VenueHour
    region: str
    case: str
    received_at: int


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """What a one-time upload code stands for. The code itself is never stored, only its hash."""

    authority: str
    region: str
    report_type: int
    symptom_onset: str  # "YYYY-MM-DD" or ""
    expires_at: int
    # RECURSIVE codes (a contact, F1, sharing): the day of the contact's exposure, "YYYY-MM-DD"; "" otherwise.
    exposure_date: str = ""


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A published batch as the store holds it: the signed header bytes and the body's size."""

    sequence: int
    published_at: int
    signed_header: bytes  # a serialised exposure.v1.SignedBatchHeader
    body_size: int


@dataclass(frozen=True, slots=True)
class BatchCommit:
    """A batch to commit (Store.commit_batch), and the lock it is committed under."""

    owner: str  # the publisher holding the lock
    fence: int  # the token acquire_publish_lock gave it: a stale one commits nothing
    sequence: int  # must be last_sequence() + 1
    published_at: int
    signed_header: bytes  # a serialised exposure.v1.SignedBatchHeader
    body: bytes
    key_ids: Sequence[str]  # the PendingKey ids the batch publishes: they leave pending with the commit
    now: int
    retention_seconds: int  # the batch is kept until published_at + retention_seconds


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    keys: int = 0
    batches: int = 0
    codes: int = 0
    submissions: int = 0


class Store(Protocol):
    def ping(self) -> None:
        """Raises StoreError when the store cannot serve (health checking uses it)."""

    def close(self) -> None: ...

    # --- submissions -------------------------------------------------------------------------------------

    def submit(
        self,
        submission: Submission,
        *,
        response: bytes,
        now: int,
        retention_seconds: int,
        code_hash: bytes | None = None,
    ) -> SubmitResult:
        """Stores a validated submission, atomically and idempotently: exactly-once step 0, de-duplicate
        (matcher/publisher.py).

        1. If (authority, submission_id) was seen: the same ``digest`` returns ``replayed`` = its stored
           response; another digest raises matcher.errors.AlreadyExists. Nothing changes.
        2. With ``code_hash``: the code must exist and not be expired at ``now`` (else
           matcher.errors.PermissionDenied, nothing changes); it is deleted in the same transaction.
        3. Each key not already held (by DiagnosisKey.fingerprint(), also after it was published, for the
           retention window) is stored as pending, to be published after ``key.publish_after()``, with a case
           id new for this call (common.new_case_id) and ``received_at = now``. A key already held keeps the
           case and time of the submission that stored it first.
        4. The submission record keeps ``digest`` and ``response`` for ``retention_seconds``.
        """

    # --- one-time codes ------------------------------------------------------------------------------------

    def put_code(self, code_hash: bytes, record: CodeRecord, *, now: int) -> bool:
        """Stores a new code until ``record.expires_at``; False if that hash is already taken."""

    def get_code(self, code_hash: bytes, *, now: int) -> CodeRecord | None:
        """The code's record, or None if unknown, used or expired at ``now``. Does not consume it."""

    def replay_of(
        self, authority: str, submission_id: str, digest: bytes, *, now: int, retention_seconds: int
    ) -> bytes | None:
        """Read only: the stored response of (authority, submission_id) if that submission was stored with this
        ``digest`` within retention; None if it was not stored; AlreadyExists if it was, with another digest.
        What ``submit`` checks first, without taking a write lock: a refused upload must cost no write."""

    # --- publishing ----------------------------------------------------------------------------------------

    def acquire_publish_lock(self, owner: str, lease_seconds: float) -> int | None:
        """Takes the single publisher lock for ``owner``; returns a fencing token that grows with every
        acquisition, or None while another owner holds an unexpired lease. Exactly-once steps 1 and 2, lock and
        fence (matcher/publisher.py)."""

    def release_publish_lock(self, owner: str) -> None:
        """Releases the lock if ``owner`` still holds it (compare-and-delete)."""

    def pending_keys(self, *, now: int, limit: int) -> list[PendingKey]:
        """Up to ``limit`` pending keys whose embargo has passed at ``now``, oldest publish time first."""

    def last_sequence(self) -> int:
        """The sequence number of the newest committed batch, 0 when there is none."""

    def commit_batch(self, batch: BatchCommit) -> None:
        """Atomically publishes a batch and removes its ``key_ids`` from pending: exactly-once step 4, commit
        (matcher/publisher.py).

        Raises LockLost, changing nothing, unless ``batch.owner`` holds the lock with token ``batch.fence`` and
        ``batch.sequence == last_sequence() + 1``.
        """

    def list_batches(self, *, after: int, limit: int) -> list[StoredBatch]:
        """Batches with sequence > ``after``, in increasing order, at most ``limit``."""

    def batch_span(self, *, after: int) -> tuple[int, int, int]:
        """``(count, first, last)`` of the retained batches with sequence > ``after`` ((0, 0, 0) for none): a read
        small enough for every Distribution call to make, so that what is listed and served follows the store
        exactly while the bytes come from memory (matcher/distribution.py). ``count == last - first + 1`` means
        they are every sequence from first to last."""

    def read_body(self, sequence: int, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of a batch body from ``offset``; raises matcher.errors.NotFound for an unknown
        or expired batch. Reading at or past the end returns b""."""

    # --- exposure configuration ----------------------------------------------------------------------------

    def put_exposure_config(self, signed_config: bytes, *, replacing: bytes | None) -> bool:
        """Stores a signed exposure configuration (a serialised SignedExposureConfig) if the current one is still
        ``replacing`` (None: there is none), atomically; False, changing nothing, if another writer got there
        first. Each version is derived from the one it replaces, so two writers can never both store one."""

    def get_exposure_config(self) -> bytes | None: ...

    # --- retention -----------------------------------------------------------------------------------------

    def purge(self, *, now: int, retention_seconds: int) -> PurgeCounts:
        """Deletes keys, batches, codes and submission records that are past retention (or expiry) at ``now``:
        exactly-once step 5, purge (matcher/publisher.py)."""
