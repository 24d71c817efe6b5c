"""docs/spec-vectors.json: reproduced by its generator, and checked through a second, element-by-element path.

The second path uses only what docs/spec.md says: single-block AES calls, Python integers and a bit-by-bit
decoder of the coded sets. It shares no code with matcher.filters' vectorised functions, so a vector and both
implementations must agree for these tests to pass.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import urllib.parse
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from google.protobuf.message import DecodeError

from exposure.v1 import batch_pb2, mirror_pb2
from matcher import crypto, spec_vectors

PATH = Path(__file__).resolve().parents[2] / "docs" / "spec-vectors.json"
VECTORS = json.loads(PATH.read_text())
DOMAIN = b"exposure.v1.BatchHeader\x00"
SKEW = 120  # seconds: the clock skew of docs/spec.md, "Matching"


def aes(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def tag_of(rpi: bytes, interval: int, salt: bytes) -> bytes:
    return aes(salt, xor(aes(salt, rpi), struct.pack("<I", interval) + bytes(12)))


def hash_of(tag: bytes, hash_range: int) -> int:
    return int.from_bytes(tag[:8], "little") % hash_range


def bits_of(data: bytes) -> list[int]:
    return [(byte >> i) & 1 for byte in data for i in range(8)]


def decode(data: bytes, count: int, p: int, quotient_bytes: int) -> list[int]:
    """docs/spec.md's decoding, one bit at a time: count unary quotients, then count P-bit remainders."""
    unary, remainders = bits_of(data[:quotient_bytes]), bits_of(data[quotient_bytes:])
    quotients, run = [], 0
    for bit in unary:
        if bit:
            quotients.append(run)
            run = 0
        else:
            run += 1
    assert len(quotients) == count and run < 8 and not any(remainders[count * p :])
    values, value = [], 0
    for j, q in enumerate(quotients):
        value += (q << p) + sum(remainders[j * p + i] << i for i in range(p))
        values.append(value)
    return values


def test_the_vector_file_is_exactly_what_the_generator_writes():
    assert PATH.read_text() == spec_vectors.render(spec_vectors.generate()), (
        "docs/spec-vectors.json is stale: run `python -m matcher.spec_vectors`"
    )


def test_the_vectors_have_the_promised_coverage():
    assert len(VECTORS["tag_cases"]) >= 20
    assert len(VECTORS["coded_sets"]) >= 5
    assert len(VECTORS["batches"]) >= 2
    assert any(key["rolling_period"] < 144 for batch in VECTORS["batches"] for key in batch["keys"])
    assert any(len(batch["sections"]) > 1 for batch in VECTORS["batches"])
    for batch in VECTORS["batches"]:
        sections = [probe["section"] for probe in batch["probes"]]
        assert -1 in sections and any(s >= 0 for s in sections)


@pytest.mark.parametrize("case", VECTORS["tag_cases"], ids=lambda c: f"i{c['interval']}-u{c['hash_range']}")
def test_each_tag_case_follows_from_its_tek_by_the_spec(case):
    tek, salt, rpi = bytes.fromhex(case["tek"]), bytes.fromhex(case["salt"]), bytes.fromhex(case["rpi"])
    assert crypto.rpi_at(tek, case["interval"]) == rpi
    assert tag_of(rpi, case["interval"], salt).hex() == case["tag"]
    assert hash_of(bytes.fromhex(case["tag"]), case["hash_range"]) == case["hash"]


@pytest.mark.parametrize("case", VECTORS["coded_sets"], ids=lambda c: c["description"])
def test_each_coded_set_decodes_to_its_hashes(case):
    data = bytes.fromhex(case["encoded_hex"])
    assert decode(data, len(case["hashes"]), case["rice_parameter"], case["quotient_bytes"]) == case["hashes"]
    assert len(data) == case["quotient_bytes"] + (len(case["hashes"]) * case["rice_parameter"] + 7) // 8


def batch_sections(batch: dict) -> list[tuple[dict, set[int]]]:
    body = bytes.fromhex(batch["body_hex"])
    return [
        (
            section,
            set(
                decode(
                    body[section["offset"] : section["offset"] + section["length"]],
                    section["count"],
                    section["rice_parameter"],
                    section["quotient_bytes"],
                )
            ),
        )
        for section in batch["sections"]
    ]


@pytest.mark.parametrize("batch", VECTORS["batches"], ids=lambda batch: batch["salt"][:8])
def test_each_batch_holds_exactly_its_keys_elements_in_their_sections(batch):
    body = bytes.fromhex(batch["body_hex"])
    assert hashlib.sha256(body).hexdigest() == batch["body_sha256"]
    salt = bytes.fromhex(batch["salt"])
    sections = batch_sections(batch)
    run = sum(key["rolling_period"] for key in batch["keys"])
    for section, values in sections:  # each section's share of the batch's budget (docs/spec.md, section 8)
        rate = batch["error_rate"] * math.sqrt(section["count"] / run)
        assert section["hash_range"] == section["count"] * math.ceil(1 / rate)
        assert len(values) == section["count"]  # no two elements share a hash here
    for key in batch["keys"]:
        tek = bytes.fromhex(key["tek"])
        [(section, holder)] = [(s, values) for s, values in sections if key["report_type"] in s["report_types"]]
        for interval in range(key["rolling_start"], key["rolling_start"] + key["rolling_period"]):
            tag = tag_of(crypto.rpi_at(tek, interval), interval, salt)
            assert hash_of(tag, section["hash_range"]) in holder, interval


def intervals_tested(observed_at: int) -> range:
    """docs/spec.md, "Matching": every interval within the clock skew of the observation's time."""
    return range((observed_at - SKEW) // 600, (observed_at + SKEW) // 600 + 1)


@pytest.mark.parametrize("batch", VECTORS["batches"], ids=lambda batch: batch["salt"][:8])
def test_each_probe_gets_the_expected_section_and_interval(batch):
    salt = bytes.fromhex(batch["salt"])
    sections = batch_sections(batch)
    for probe in batch["probes"]:
        found = [
            (index, interval)
            for index, (section, values) in enumerate(sections)
            for interval in intervals_tested(probe["observed_at"])
            if hash_of(tag_of(bytes.fromhex(probe["rpi"]), interval, salt), section["hash_range"]) in values
        ]
        assert (found[0] if found else (-1, None)) == (probe["section"], probe["interval"]), probe


@pytest.mark.parametrize("batch", VECTORS["batches"], ids=lambda batch: batch["salt"][:8])
def test_an_element_replayed_beyond_the_clock_skew_is_among_the_probes_and_absent(batch):
    present = {p["rpi"] for p in batch["probes"] if p["section"] >= 0}
    replays = [p for p in batch["probes"] if p["rpi"] in present and p["section"] < 0]
    assert len(replays) >= 4


@pytest.mark.parametrize("case", VECTORS["signed_batch_files"], ids=lambda case: case["description"])
def test_each_signed_batch_file_verifies_or_fails_as_stated(case):
    data = bytes.fromhex(case["batch_file_hex"])
    assert data[:16] == b"EXPOSURE BATCH 2"
    length = int.from_bytes(data[16:20], "little")
    signed = batch_pb2.SignedBatchHeader.FromString(data[20 : 20 + length])
    body = data[20 + length :]
    public = serialization.load_pem_public_key(case["public_key_pem"].encode())
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert hashlib.sha256(der).digest()[:8].hex() == case["key_id"] == signed.key_id
    try:
        public.verify(signed.signature, DOMAIN + signed.header, ec.ECDSA(hashes.SHA256()))
        header = batch_pb2.BatchHeader.FromString(signed.header)
        body_ok = len(body) == header.body_size and hashlib.sha256(body).digest() == header.body_sha256
    except (InvalidSignature, DecodeError):
        body_ok = False
    assert body_ok == case["valid"]
    if case["valid"]:
        expected = case["header"]
        assert (header.sequence, header.published_at, header.region, header.salt.hex()) == (
            expected["sequence"],
            expected["published_at"],
            expected["region"],
            expected["salt"],
        )
        assert (header.first_interval, header.last_interval) == (expected["first_interval"], expected["last_interval"])
        assert header.format_version == expected["format_version"]
        assert [section.hash_range for section in header.sections] == expected["hash_ranges"]


@pytest.mark.parametrize("case", VECTORS["signed_mirror_indexes"], ids=lambda case: case["description"])
def test_each_signed_mirror_index_verifies_or_fails_as_stated_and_lists_the_batch_file(case):
    envelope = mirror_pb2.SignedMirrorIndex.FromString(bytes.fromhex(case["signed_index_hex"]))
    public = serialization.load_pem_public_key(case["public_key_pem"].encode())
    assert envelope.key_id == case["key_id"]
    try:
        public.verify(envelope.signature, b"exposure.v1.MirrorIndex\x00" + envelope.index, ec.ECDSA(hashes.SHA256()))
        valid = True
    except InvalidSignature:
        valid = False
    assert valid == case["valid"]
    if valid:
        index = mirror_pb2.MirrorIndex.FromString(envelope.index)
        assert (index.newest_sequence, index.written_at) == (case["newest_sequence"], case["written_at"])
        [listed] = case["files"]
        [intact] = [c for c in VECTORS["signed_batch_files"] if c["valid"]]
        data = bytes.fromhex(intact["batch_file_hex"])
        assert (listed["size"], listed["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
        assert listed["name"] == f"batches/{listed['sequence']}-{listed['sha256'][:16]}.bin"
        assert [(f.sequence, f.name, f.size, f.sha256.hex()) for f in index.files] == [
            (listed["sequence"], listed["name"], listed["size"], listed["sha256"])
        ]


def test_the_worked_examples_in_the_spec_are_the_vectors():
    spec = (PATH.parent / "spec.md").read_text()
    case = VECTORS["tag_cases"][1]
    for field in ("tek", "rpi", "salt", "tag"):
        assert f"`{case[field]}`" in spec, field
    rpik = crypto.rpik(bytes.fromhex(case["tek"])).hex()
    assert f"`{rpik}`" in spec
    assert f"`U = {case['hash_range']:,}`" in spec and f"`h = {case['hash']:,}`" in spec
    coded = VECTORS["coded_sets"][3]
    assert f"`{coded['encoded_hex']}`" in spec and str(coded["hashes"]) in spec


@pytest.mark.parametrize("case", VECTORS["venues"], ids=lambda case: case["venue_id"][:8])
def test_each_venue_follows_from_its_seed_by_the_spec(case):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(case["private_key_seed"]))
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert public.hex() == case["public_key"]
    encoded = case["payload"].removeprefix("EXPOSURE-VENUE:1:").split(":")
    assert base64.urlsafe_b64decode(encoded[0] + "=") == public
    assert urllib.parse.unquote(encoded[1]) == case["name"]
    venue_id = hashlib.sha256(b"exposure.v1.Venue\x00" + public).digest()[:16]
    assert venue_id.hex() == case["venue_id"]
    for entry in case["hours"]:
        block = b"EXP-VENUE" + bytes(3) + struct.pack("<I", entry["hour"])
        assert aes(venue_id, block).hex() == entry["identifier"]
    warning = case["warning"]
    message = b"exposure.v1.VenueWarning\x00" + public + struct.pack("<II", warning["first_hour"], warning["last_hour"])
    private.public_key().verify(bytes.fromhex(warning["signature"]), message)  # raises if it does not verify


def test_the_venue_batch_holds_exactly_the_warned_hours():
    batch = VECTORS["venue_batch"]
    salt, body = bytes.fromhex(batch["salt"]), bytes.fromhex(batch["body_hex"])
    values = set(decode(body, batch["count"], batch["rice_parameter"], batch["quotient_bytes"]))
    for probe in batch["probes"]:
        venue_id = bytes.fromhex(probe["venue_id"])
        identifier = aes(venue_id, b"EXP-VENUE" + bytes(3) + struct.pack("<I", probe["hour"]))
        held = hash_of(tag_of(identifier, probe["hour"], salt), batch["hash_range"]) in values
        assert held == probe["expected"] and probe["hour"] * 3600 < batch["published_at"], probe
