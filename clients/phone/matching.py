"""Testing what the phone heard against the batches it verified, on the phone, whole arrays at a time.

Each batch is tested once against each sighting (a batch remembers how far its check got), so a check after a
sync costs only the new batches and the new sightings. Sightings of the same (RPI, time) are tested once, and
sightings that the exposure configuration can never count (attenuation weight 0) are not tested at all: a lookup
that cannot raise the score can only add false positives. A new configuration may count other sightings, so
it makes the next check test everything again.
"""

from __future__ import annotations

import hashlib

import numpy as np

from exposure.v1 import batch_pb2, config_pb2
from matcher.batches import eligible, match, open_body
from matcher.exposure_config import attenuation_weights
from matcher.intervals import CLOCK_SKEW_SECONDS, interval_start

from .store import PhoneStore, Sightings

_MATCHED_CONFIG = "matched_config"  # digest of the configuration the kept matches were found with


def header_of(signed_header: bytes) -> batch_pb2.BatchHeader:
    """The header of a batch already verified at sync time (its exact signed bytes were kept)."""
    return batch_pb2.BatchHeader.FromString(batch_pb2.SignedBatchHeader.FromString(signed_header).header)


def countable(sightings: Sightings, config: config_pb2.ExposureConfig) -> np.ndarray:
    """Which sightings the configuration can ever count: their attenuation bucket has a weight above 0.

    A batch does not carry the case's TX power, so attenuation is the configuration's assumed TX power minus
    the RSSI (as scoring computes it).
    """
    attenuation = config.tx_power_dbm_when_unknown - sightings.rssi.astype(np.float64)
    return attenuation_weights(attenuation, config) > 0


def match_new(store: PhoneStore, config: config_pb2.ExposureConfig) -> int:
    """Tests every sighting not yet tested against each kept batch; returns the number of new matches.

    The untested sightings are read once for all batches, only from the time span any of them can make eligible,
    and each batch then tests those its own rule (``eligible``) selects: after the first day most batches have
    none, and cost neither a lookup nor a digest check.
    """
    digest = hashlib.sha256(config.SerializeToString(deterministic=True)).digest()
    if store.get(_MATCHED_CONFIG) != digest:
        store.restart_matching()
        store.put(_MATCHED_CONFIG, digest)
    last = store.last_sighting_id()
    todo = [(kept, header_of(kept.signed_header)) for kept in store.batches() if kept.checked_through < last]
    if not todo:
        return 0
    headers = [header for _, header in todo if header.sections]
    # The time span in which any of these batches tests an observation (an empty span when none has sections).
    during = (
        min((interval_start(h.first_interval) - CLOCK_SKEW_SECONDS for h in headers), default=0),
        max(
            (min(interval_start(h.last_interval + 1) + CLOCK_SKEW_SECONDS, h.published_at) for h in headers), default=0
        ),
    )
    untested = store.sightings(after_id=min(kept.checked_through for kept, _ in todo), during=during)
    untested = untested.select(countable(untested, config))
    found = 0
    for kept, header in todo:
        sightings = untested.select((untested.ids > kept.checked_through) & eligible(header, untested.times))
        matched: list[tuple[int, int, int]] = []
        if len(sightings):
            # One lookup per distinct (RPI, time): a scanner may record the same identifier several times at once.
            # Rows compared as 24-byte values: much faster than np.unique(axis=0).
            keys = np.concatenate([sightings.rpis, sightings.times.astype("<i8").view(np.uint8).reshape(-1, 8)], 1)
            _, first, inverse = np.unique(keys.view("V24").ravel(), return_index=True, return_inverse=True)
            found_unique = match(
                header, open_body(header, body=kept.body), sightings.rpis[first], sightings.times[first]
            )
            section = found_unique.section[inverse.reshape(-1)]
            interval = found_unique.interval[inverse.reshape(-1)]
            hit = section >= 0
            matched = list(zip(sightings.ids[hit].tolist(), section[hit].tolist(), interval[hit].tolist()))
        store.record_matches(kept.sequence, matched, checked_through=last)
        found += len(matched)
    return found
