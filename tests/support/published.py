"""What the service published, held against what it acknowledged: the exactly-once check of the fault and
concurrency tests.

- Every batch the store lists is read whole and verified as a phone would (signature, the body's size and SHA-256,
  then each section's layout and coding): a half-written batch fails here. Sequence numbers run 1, 2, 3, ... without a gap.
- For each submitted key, the number of batches that hold it, and in which section: its RPIs at its first and
  last interval, tagged and hashed with each batch's salt and range, looked up in the batch's sections (whole
  arrays, one pass per batch). A key is "in" a batch when both are members; a false positive at eps ~ 2e-8 per lookup, twice, does not
  happen.
- Nothing invented, nothing lost: each section holds exactly the hashes of every element of the keys found in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from exposure.v1 import batch_pb2, keys_pb2
from matcher import crypto
from matcher.batches import LoadedSection, key_hashes, open_body, open_header
from matcher.filters import contains, element_hashes, element_tags
from matcher.model import DiagnosisKey, ReportType
from matcher.signing import TrustedKeys
from matcher.store import Store

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Published:
    header: batch_pb2.BatchHeader
    sections: list[LoadedSection]


def published_batches(store: Store, trusted: TrustedKeys) -> list[Published]:
    """Every listed batch, downloaded whole and verified; AssertionError naming the first that is not intact."""
    found: list[Published] = []
    after = 0
    while True:
        page = store.list_batches(after=after, limit=100)
        if not page:
            return found
        for stored in page:
            assert stored.sequence == after + 1, f"batch {stored.sequence} follows batch {after}: a gap or a repeat"
            header = open_header(batch_pb2.SignedBatchHeader.FromString(stored.signed_header), trusted)
            assert header.sequence == stored.sequence and header.body_size == stored.body_size
            body = b"".join(
                store.read_body(stored.sequence, offset, READ_CHUNK)
                for offset in range(0, stored.body_size, READ_CHUNK)
            )
            found.append(Published(header, open_body(header, body)))  # BatchRejected if half-written
            after = stored.sequence


KeyLike = tuple[bytes, int, int]  # key data, rolling start, rolling period


def as_key(key: keys_pb2.DiagnosisKey | KeyLike) -> KeyLike:
    if isinstance(key, tuple):
        return key
    return bytes(key.key_data), key.rolling_start_interval_number, key.rolling_period or 144


def _first_and_last_elements(keys: Sequence[KeyLike]) -> tuple[np.ndarray, np.ndarray]:
    """The RPIs and intervals of each key's first and last interval, two rows a key."""
    firsts = np.array([start for _, start, _ in keys], dtype=np.int64)
    lasts = np.array([start + period - 1 for _, start, period in keys], dtype=np.int64)
    intervals = np.stack([firsts, lasts], axis=1).reshape(-1)
    blocks = crypto.padded_data(intervals).tobytes()
    rpis = bytearray(len(blocks))
    for n, (key_data, _, _) in enumerate(keys):  # one HKDF and one AES call per key: its two blocks
        encryptor = Cipher(algorithms.AES(crypto.rpik(key_data)), modes.ECB()).encryptor()
        rpis[32 * n : 32 * n + 32] = encryptor.update(blocks[32 * n : 32 * n + 32])
    return np.frombuffer(bytes(rpis), dtype=np.uint8).reshape(-1, 16), intervals


def batches_holding(keys: Sequence[KeyLike], batches: Sequence[Published]) -> np.ndarray:
    """For each key, how many batches hold it: ``(len(keys),)`` int."""
    counts = np.zeros(len(keys), dtype=np.int64)
    if not keys:
        return counts
    elements = _first_and_last_elements(keys)
    for batch in batches:
        counts += _sections_holding(elements, batch) >= 0
    return counts


def sections_holding(keys: Sequence[KeyLike], batches: Sequence[Published]) -> np.ndarray:
    """For each batch and key, the index of the section of the batch that holds the key (its first and last
    elements), or -1: ``(len(batches), len(keys))`` int."""
    if not keys:
        return np.full((len(batches), 0), -1, dtype=np.int64)
    elements = _first_and_last_elements(keys)
    return np.array([_sections_holding(elements, batch) for batch in batches], dtype=np.int64).reshape(len(batches), -1)


def _sections_holding(elements: tuple[np.ndarray, np.ndarray], batch: Published) -> np.ndarray:
    rpis, intervals = elements
    found = np.full(len(rpis) // 2, -1, dtype=np.int64)
    if not batch.sections:
        return found
    tags = element_tags(rpis, intervals, batch.header.salt)
    for index, section in enumerate(batch.sections):  # each section hashes into its own range
        member = contains(section.values, element_hashes(tags, section.info.hash_range)).reshape(-1, 2).all(axis=1)
        found[member & (found == -1)] = index
    return found


@dataclass(frozen=True)
class ExactlyOnce:
    batches: list[Published]
    keys_found: int


def check_exactly_once(
    store: Store,
    trusted: TrustedKeys,
    acknowledged: Iterable[keys_pb2.DiagnosisKey | KeyLike],
    unacknowledged: Iterable[keys_pb2.DiagnosisKey | KeyLike] = (),
) -> ExactlyOnce:
    """Asserts: every batch intact; each acknowledged key in exactly one batch; an unacknowledged one (its answer
    was lost) in at most one; and no element in any batch beyond those of the keys found."""
    acked = [as_key(k) for k in acknowledged]
    lost = [as_key(k) for k in unacknowledged]
    assert len({k[:2] for k in acked + lost}) == len(acked) + len(lost), "the test submitted a key twice"
    batches = published_batches(store, trusted)
    counts = batches_holding(acked + lost, batches)
    acked_counts, lost_counts = counts[: len(acked)], counts[len(acked) :]
    missing, repeated = int((acked_counts == 0).sum()), int((acked_counts > 1).sum())
    assert missing == 0 and repeated == 0, (
        f"of {len(acked)} acknowledged keys, {missing} are in no batch and {repeated} in more than one "
        f"({len(batches)} batches)"
    )
    assert (lost_counts <= 1).all(), f"{int((lost_counts > 1).sum())} unacknowledged keys are in several batches"
    keys = acked + lost
    holders = sections_holding(keys, batches)
    for batch, holding in zip(batches, holders):
        for index, section in enumerate(batch.sections):
            held = [
                DiagnosisKey(data, start, period, ReportType.CONFIRMED_TEST)
                for (data, start, period), at in zip(keys, holding)
                if at == index
            ]
            expected = np.unique(key_hashes(held, batch.header.salt, section.info.hash_range))
            # Exactly the hashes of every element of the keys found here: nothing invented, nothing lost. (Two
            # elements of one section may share a hash, stored once, so hashes are compared, not counts.)
            assert np.array_equal(section.values, expected), (
                f"batch {batch.header.sequence} section {index} holds {len(section.values)} hashes; the "
                f"{len(held)} submitted keys found in it account for {len(expected)}"
            )
    return ExactlyOnce(batches, int((counts > 0).sum()))
