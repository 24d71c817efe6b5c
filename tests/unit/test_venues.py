"""Venues: the QR payload, hourly identifiers, owner-signed warnings, and venue sections of a batch."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from exposure.v1 import batch_pb2
from matcher import fprate, venues
from matcher.batches import BatchRejected, build_batch, match, match_venue_hours, open_batch, open_body, sign_header
from matcher.exposure_config import default_config
from matcher.model import VenueHour
from matcher.signing import TrustedKeys, generate_signing_key
from matcher.venues import VenueError, VenueOwner, parse_payload

SIGNING_KEY = generate_signing_key()
HOUR = 1795176000 // 3600  # 2026-11-22 08:00 UTC
OWNER = VenueOwner.create("Phở Hà Nội, 12 Lý Quốc Sư")


def test_a_payload_round_trips_and_names_the_venue_in_any_language():
    payload = OWNER.venue.payload()
    assert payload.startswith("EXPOSURE-VENUE:1:") and payload.isascii()
    assert parse_payload(payload) == OWNER.venue
    assert parse_payload(f"  {payload}\n") == OWNER.venue


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("https://example.org/checkin", "not a venue QR code"),
        ("EXPOSURE-VENUE:1:abc", "not a venue QR code"),
        ("EXPOSURE-VENUE:1:" + "A" * 10 + ":name", "not 32"),
        ("EXPOSURE-VENUE:1:!!!:name", "not readable"),
    ],
)
def test_anything_else_is_refused_saying_why(text, reason):
    with pytest.raises(VenueError, match=reason):
        parse_payload(text)


def test_the_trace_file_gives_back_the_owner_and_must_belong_to_its_payload():
    again = VenueOwner.from_trace(OWNER.trace())
    assert again.venue == OWNER.venue and again.sign_warning(1, 2) == OWNER.sign_warning(1, 2)
    stranger = VenueOwner.create("elsewhere")
    with pytest.raises(VenueError, match="does not belong"):
        VenueOwner.from_trace({**OWNER.trace(), "private_key": stranger.trace()["private_key"]})
    with pytest.raises(VenueError, match="not a venue trace file"):
        VenueOwner.from_trace({"name": "x"})


def test_a_name_is_one_to_64_bytes():
    with pytest.raises(VenueError, match=r"1..64 bytes"):
        VenueOwner.create("")
    with pytest.raises(VenueError, match=r"1..64 bytes"):
        VenueOwner.create("é" * 33)


def test_hourly_identifiers_follow_the_spec_one_block_at_a_time():
    venue_id = OWNER.venue.venue_id
    assert venue_id == hashlib.sha256(b"exposure.v1.Venue\x00" + OWNER.venue.public_key).digest()[:16]
    hours = np.array([0, HOUR, HOUR + 1, 2**32 - 1])
    got = venues.hour_identifiers(venue_id, hours)
    for hour, identifier in zip(hours.tolist(), got):
        block = b"EXP-VENUE" + bytes(3) + hour.to_bytes(4, "little")
        encryptor = Cipher(algorithms.AES(venue_id), modes.ECB()).encryptor()
        assert identifier.tobytes() == encryptor.update(block) + encryptor.finalize()


def test_only_the_owner_signs_a_warning_and_only_for_its_hours():
    signature = OWNER.sign_warning(HOUR, HOUR + 2)
    public_key = OWNER.venue.public_key
    assert venues.verify_warning(public_key, HOUR, HOUR + 2, signature)
    assert not venues.verify_warning(public_key, HOUR, HOUR + 3, signature)
    assert not venues.verify_warning(VenueOwner.create("x").venue.public_key, HOUR, HOUR + 2, signature)
    assert not venues.verify_warning(public_key, HOUR, HOUR + 2, bytes(64))
    assert not venues.verify_warning(b"short", HOUR, HOUR + 2, signature)


def venue_hours(owner: VenueOwner, *hours: int) -> list[VenueHour]:
    identifiers = venues.hour_identifiers(owner.venue.venue_id, np.array(hours))
    return [VenueHour(identifier.tobytes(), hour) for identifier, hour in zip(identifiers, hours)]


def cut(hours: list[VenueHour], keys=()) -> tuple[batch_pb2.BatchHeader, list]:
    built = build_batch(
        list(keys),
        sequence=1,
        published_at=(HOUR + 10) * 3600,
        region="VN",
        config=default_config(),
        signing_key=SIGNING_KEY,
        error_rate=fprate.error_rate_for(),
        venue_hours=hours,
        venue_error_rate=fprate.venue_error_rate(),
    )
    return open_batch(sign_header(built.header, SIGNING_KEY), built.body, TrustedKeys([SIGNING_KEY.verifying_key()]))


def test_warned_hours_are_a_venue_section_that_matches_those_hours_of_that_venue_only():
    header, sections = cut(venue_hours(OWNER, HOUR, HOUR + 1) * 2)  # a venue-hour warned twice is one element
    [info] = header.sections
    assert (info.kind, list(info.report_types), info.count) == (batch_pb2.SECTION_KIND_VENUE, [], 2)
    assert info.hash_range == 2 * -(-1 // fprate.venue_error_rate())
    other = VenueOwner.create("next door")
    probes = venue_hours(OWNER, HOUR - 1, HOUR, HOUR + 1, HOUR + 2) + venue_hours(other, HOUR, HOUR + 1)
    identifiers = np.frombuffer(b"".join(p.identifier for p in probes), np.uint8).reshape(-1, 16)
    found = match_venue_hours(header, sections, identifiers, np.array([p.hour for p in probes]))
    assert found.tolist() == [False, True, True, False, False, False]
    # a proximity observation is never looked up in a venue section
    assert (match(header, sections, identifiers, np.full(len(probes), HOUR * 3600)).section == -1).all()


def test_an_hour_that_began_after_publication_is_not_tested():
    header, sections = cut(venue_hours(OWNER, HOUR + 12))
    [probe] = venue_hours(OWNER, HOUR + 12)
    found = match_venue_hours(header, sections, np.frombuffer(probe.identifier, np.uint8), np.array([HOUR + 12]))
    assert found.tolist() == [False]


def test_a_venue_section_that_is_not_last_or_carries_report_types_is_refused():
    built = build_batch(
        [],
        sequence=1,
        published_at=(HOUR + 10) * 3600,
        region="VN",
        config=default_config(),
        signing_key=SIGNING_KEY,
        error_rate=1e-3,
        venue_hours=venue_hours(OWNER, HOUR),
        venue_error_rate=1e-3,
    )
    header = batch_pb2.BatchHeader()
    header.CopyFrom(built.header)
    header.sections[0].report_types.append(1)
    with pytest.raises(BatchRejected, match="no report types"):
        open_body(header, built.body)
    header.CopyFrom(built.header)
    header.sections[0].kind = 7
    with pytest.raises(BatchRejected, match="neither proximity nor venue"):
        open_body(header, built.body)
