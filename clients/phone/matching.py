"""Testing what the phone heard against the batches it verified, on the phone, whole arrays at a time.

Each batch is tested once against each sighting (a batch remembers how far its check got), so a check after a
sync costs only the new batches and the new sightings. Sightings of the same (RPI, interval) are tested once.
"""

from __future__ import annotations

import numpy as np

from exposure.v1 import batch_pb2
from matcher.batches import match, open_body

from .store import PhoneStore

TOLERANCE_INTERVALS = 1


def header_of(signed_header: bytes) -> batch_pb2.BatchHeader:
    """The header of a batch already verified at sync time (its exact signed bytes were kept)."""
    return batch_pb2.BatchHeader.FromString(batch_pb2.SignedBatchHeader.FromString(signed_header).header)


def match_new(store: PhoneStore) -> int:
    """Tests every sighting not yet tested against each kept batch; returns the number of new matches."""
    last = store.last_sighting_id()
    found = 0
    for sequence, signed_header, _, body, checked_through in store.batches():
        if checked_through >= last:
            continue
        header = header_of(signed_header)
        sightings = store.sightings(after_id=checked_through)
        hits = np.full(len(sightings), -1, dtype=np.int64)
        if len(sightings) and header.filters:
            # One lookup per distinct (RPI, interval): a scanner sees the same identifier several times.
            keys = np.concatenate([sightings.rpis, sightings.intervals.astype("<i8").view(np.uint8).reshape(-1, 8)], 1)
            unique, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
            unique_hits = match(
                header,
                open_body(header, body),
                sightings.rpis[first],
                sightings.intervals[first],
                observed_at=sightings.times[first],
                tolerance=TOLERANCE_INTERVALS,
            )
            hits = unique_hits[inverse.reshape(-1)]
        matched = hits >= 0
        store.record_matches(sequence, zip(sightings.ids[matched].tolist(), hits[matched].tolist()), checked_through=last)
        found += int(matched.sum())
    return found
