"""Testing what the phone heard against the batches it verified, on the phone, whole arrays at a time.

Each batch is tested once against each sighting (a batch remembers how far its check got), so a check after a
sync costs only the new batches and the new sightings. Sightings of the same (RPI, interval) are tested once.
"""

from __future__ import annotations

import numpy as np

from exposure.v1 import batch_pb2
from matcher.batches import eligible, match, open_body
from matcher.intervals import interval_start

from .store import PhoneStore

TOLERANCE_INTERVALS = 1


def header_of(signed_header: bytes) -> batch_pb2.BatchHeader:
    """The header of a batch already verified at sync time (its exact signed bytes were kept)."""
    return batch_pb2.BatchHeader.FromString(batch_pb2.SignedBatchHeader.FromString(signed_header).header)


def match_new(store: PhoneStore) -> int:
    """Tests every sighting not yet tested against each kept batch; returns the number of new matches.

    The untested sightings are read once for all batches, only from the time span any of them can make eligible,
    and each batch then tests those its own rule (``eligible``) selects: after the first day most batches have
    none, and cost neither a lookup nor a digest check.
    """
    last = store.last_sighting_id()
    todo = [(row, header_of(row[1])) for row in store.batches() if row[4] < last]
    if not todo:
        return 0
    untested = store.sightings(
        after_id=min(row[4] for row, _ in todo),
        during=(
            min(interval_start(h.first_interval - TOLERANCE_INTERVALS) for _, h in todo),
            max(min(interval_start(h.last_interval + TOLERANCE_INTERVALS + 1), h.published_at) for _, h in todo),
        ),
    )
    found = 0
    for (sequence, _, _, body, checked_through), header in todo:
        sightings = untested.select(
            (untested.ids > checked_through)
            & eligible(header, untested.intervals, untested.times, tolerance=TOLERANCE_INTERVALS)
        )
        hits = np.full(len(sightings), -1, dtype=np.int64)
        if len(sightings):
            # One lookup per distinct (RPI, interval): a scanner sees the same identifier several times. Rows
            # compared as 24-byte values: much faster than np.unique(axis=0).
            keys = np.concatenate([sightings.rpis, sightings.intervals.astype("<i8").view(np.uint8).reshape(-1, 8)], 1)
            _, first, inverse = np.unique(keys.view("V24").ravel(), return_index=True, return_inverse=True)
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
