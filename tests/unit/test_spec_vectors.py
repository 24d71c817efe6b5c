"""docs/spec-vectors.json: reproduced by its generator, and checked through a second, element-by-element path.

The second path uses only what docs/spec.md says: single-block AES calls, Python integers, pybloom-live's
``fromfile`` and a hand-rolled bit test. It shares no code with matcher.filters' vectorised functions, so a
vector and both implementations must agree for these tests to pass.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from google.protobuf.message import DecodeError
from pybloom_live import BloomFilter

from exposure.v1 import batch_pb2
from matcher import crypto, spec_vectors

PATH = Path(__file__).resolve().parents[2] / "docs" / "spec-vectors.json"
VECTORS = json.loads(PATH.read_text())
POSITION_KEY = bytes.fromhex("057dcc00d93900bad3175d09ed8d98d8")  # docs/spec.md
DOMAIN = b"exposure.v1.BatchHeader\x00"


def aes(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def tag_of(rpi: bytes, interval: int, salt: bytes) -> bytes:
    return aes(salt, xor(aes(salt, rpi), struct.pack("<I", interval) + bytes(12)))


def positions_of(tag: bytes, k: int, bits_per_slice: int) -> list[int]:
    out = []
    for j in range(k):
        block = aes(POSITION_KEY, xor(tag, struct.pack("<I", j // 2) + bytes(12)))
        out.append(j * bits_per_slice + int.from_bytes(block[8 * (j % 2) : 8 * (j % 2) + 8], "little") % bits_per_slice)
    return out


def is_member(image: bytes, tag: bytes) -> bool:
    _, k, bits_per_slice, _, _ = struct.unpack_from("<dQQQQ", image)
    bits = image[40:]
    return all(bits[p >> 3] >> (p & 7) & 1 for p in positions_of(tag, k, bits_per_slice))


def test_the_vector_file_is_exactly_what_the_generator_writes():
    assert PATH.read_text() == spec_vectors.render(spec_vectors.generate()), (
        "docs/spec-vectors.json is stale: run `python -m matcher.spec_vectors`"
    )


def test_the_vectors_have_the_promised_coverage():
    assert len(VECTORS["tag_cases"]) >= 20
    assert len(VECTORS["batches"]) >= 2
    assert any(key["rolling_period"] < 144 for batch in VECTORS["batches"] for key in batch["keys"])
    for batch in VECTORS["batches"]:
        expected = [probe["expected"] for probe in batch["probes"]]
        assert True in expected and False in expected


@pytest.mark.parametrize("case", VECTORS["tag_cases"], ids=lambda c: f"i{c['interval']}-m{c['bits_per_slice']}")
def test_each_tag_case_follows_from_its_tek_by_the_spec(case):
    tek, salt, rpi = bytes.fromhex(case["tek"]), bytes.fromhex(case["salt"]), bytes.fromhex(case["rpi"])
    assert crypto.rpi_at(tek, case["interval"]) == rpi
    assert tag_of(rpi, case["interval"], salt).hex() == case["tag"]
    assert positions_of(bytes.fromhex(case["tag"]), case["k"], case["bits_per_slice"]) == case["positions"]


@pytest.mark.parametrize("batch", VECTORS["batches"], ids=lambda batch: batch["salt"][:8])
def test_each_batch_filter_loads_with_pybloom_live_and_holds_exactly_its_keys_elements(batch):
    image = bytes.fromhex(batch["filter_tofile_hex"])
    salt = bytes.fromhex(batch["salt"])
    elements = sum(key["rolling_period"] for key in batch["keys"])
    loaded = BloomFilter.fromfile(io.BytesIO(image))
    sized = BloomFilter(elements, batch["error_rate"])
    assert (loaded.capacity, loaded.count, loaded.error_rate) == (elements, elements, batch["error_rate"])
    assert (loaded.num_slices, loaded.bits_per_slice) == (sized.num_slices, sized.bits_per_slice)
    assert hashlib.sha256(image).hexdigest() == batch["filter_sha256"]
    for key in batch["keys"]:
        tek = bytes.fromhex(key["tek"])
        for interval in range(key["rolling_start"], key["rolling_start"] + key["rolling_period"]):
            assert is_member(image, tag_of(crypto.rpi_at(tek, interval), interval, salt)), interval


@pytest.mark.parametrize("batch", VECTORS["batches"], ids=lambda batch: batch["salt"][:8])
def test_each_probe_gets_the_expected_answer(batch):
    image = bytes.fromhex(batch["filter_tofile_hex"])
    salt = bytes.fromhex(batch["salt"])
    for probe in batch["probes"]:
        tag = tag_of(bytes.fromhex(probe["rpi"]), probe["interval"], salt)
        assert is_member(image, tag) == probe["expected"], probe


@pytest.mark.parametrize("batch", VECTORS["batches"], ids=lambda batch: batch["salt"][:8])
def test_an_element_replayed_at_other_intervals_is_among_the_probes_and_absent(batch):
    present = {(p["rpi"], p["interval"]) for p in batch["probes"] if p["expected"]}
    replays = [p for p in batch["probes"] if p["rpi"] in {rpi for rpi, _ in present}
               and (p["rpi"], p["interval"]) not in present]
    assert len(replays) >= 4
    assert not any(p["expected"] for p in replays)


@pytest.mark.parametrize("case", VECTORS["signed_batch_files"], ids=lambda case: case["description"])
def test_each_signed_batch_file_verifies_or_fails_as_stated(case):
    data = bytes.fromhex(case["batch_file_hex"])
    assert data[:16] == b"EXPOSURE BATCH 1"
    length = int.from_bytes(data[16:20], "little")
    signed = batch_pb2.SignedBatchHeader.FromString(data[20 : 20 + length])
    body = data[20 + length :]
    public = serialization.load_pem_public_key(case["public_key_pem"].encode())
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert hashlib.sha256(der).digest()[:8].hex() == case["key_id"] == signed.key_id
    try:
        public.verify(signed.signature, DOMAIN + signed.header, ec.ECDSA(hashes.SHA256()))
        header = batch_pb2.BatchHeader.FromString(signed.header)
        digests_ok = all(
            hashlib.sha256(body[f.offset : f.offset + f.length]).digest() == f.sha256 for f in header.filters
        ) and len(body) == header.body_size
    except (InvalidSignature, DecodeError):
        digests_ok = False
    assert digests_ok == case["valid"]
    if case["valid"]:
        expected = case["header"]
        assert (header.sequence, header.published_at, header.region, header.salt.hex()) == (
            expected["sequence"], expected["published_at"], expected["region"], expected["salt"]
        )
        assert (header.first_interval, header.last_interval) == (expected["first_interval"], expected["last_interval"])


def test_the_worked_examples_in_the_spec_are_the_vectors():
    spec = (PATH.parent / "spec.md").read_text()
    case = VECTORS["tag_cases"][1]
    for field in ("tek", "rpi", "salt", "tag"):
        assert f"`{case[field]}`" in spec, field
    rpik = crypto.rpik(bytes.fromhex(case["tek"])).hex()
    assert f"`{rpik}`" in spec
    assert f"with k = {case['k']} slices of m = {case['bits_per_slice']} bits" in spec
    for j, bit in enumerate(case["positions"][:4]):
        assert f"| {bit} |\n" in spec and f"\n| {j} |" in spec
    image_header = bytes.fromhex(VECTORS["batches"][0]["filter_tofile_hex"])[:40].hex()
    assert " ".join(image_header[i : i + 16] for i in range(0, 80, 16)) in spec.replace("\n", " ")
