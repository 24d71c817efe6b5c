"""Element tags, element hashes and Golomb-Rice coded sets: the code against the spec's bit layout, the size
against the theory, and every malformed encoding refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from matcher import filters, fprate
from matcher.filters import contains, decode_set, element_hashes, element_tags, encode_set

SALT = bytes(range(16))


def random_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 16), dtype=np.uint8)


def aes_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def test_a_tag_is_a_two_block_cbc_mac_of_the_rpi_and_the_padded_interval():
    rpis, intervals = random_rows(5, 1), np.array([0, 1, 2642976, 2643119, 0xFFFFFFFF])
    tags = element_tags(rpis, intervals, SALT)
    for rpi, interval, tag in zip(rpis, intervals, tags):
        first = aes_block(SALT, rpi.tobytes())
        pad = int(interval).to_bytes(4, "little") + bytes(12)
        assert tag.tobytes() == aes_block(SALT, bytes(a ^ b for a, b in zip(first, pad)))


def test_the_same_identifier_at_another_interval_or_under_another_salt_gets_an_unrelated_tag():
    rpis = np.repeat(random_rows(1, 2), 3, axis=0)
    tags = element_tags(rpis, np.array([100, 101, 100]), SALT)
    other_salt = element_tags(rpis[:1], np.array([100]), bytes(16))
    assert len({t.tobytes() for t in tags[:2]} | {other_salt[0].tobytes()}) == 3
    assert tags[0].tobytes() == tags[2].tobytes()


def test_a_salt_must_be_16_bytes_and_intervals_must_fit_32_bits():
    with pytest.raises(ValueError, match="16 bytes"):
        element_tags(random_rows(1, 3), np.array([1]), b"short")
    with pytest.raises(ValueError, match="32-bit"):
        element_tags(random_rows(1, 3), np.array([1 << 32]), SALT)


@given(tag=st.binary(min_size=16, max_size=16), hash_range=st.integers(1, filters.MAX_HASH_RANGE))
def test_an_element_hash_is_the_tags_first_8_bytes_little_endian_modulo_the_range(tag, hash_range):
    got = element_hashes(np.frombuffer(tag, np.uint8).reshape(1, 16), hash_range)
    assert got.dtype == np.uint64 and got.tolist() == [int.from_bytes(tag[:8], "little") % hash_range]


def test_a_hash_range_is_elements_times_the_inverse_rate_rounded_up_and_at_most_2_to_the_56():
    assert filters.hash_range_for(720, 1e-8) == 720 * 100_000_000
    assert filters.hash_range_for(3, 0.3) == 3 * 4
    with pytest.raises(ValueError, match="cut smaller batches"):
        filters.hash_range_for(10**9, 1e-9)
    for bad in (0, 1.0, -0.1):
        with pytest.raises(ValueError, match="between 0 and 1"):
            filters.hash_range_for(10, bad)


def reference_encoding(values: list[int], p: int) -> bytes:
    """docs/spec.md's coding, one bit at a time: the unary stream, padded, then the remainder stream, padded."""

    def pack(bits: list[int]) -> bytes:
        bits = bits + [0] * (-len(bits) % 8)
        return bytes(sum(bit << i for i, bit in enumerate(bits[n : n + 8])) for n in range(0, len(bits), 8))

    gaps = [b - a for a, b in zip([0, *values], values)]
    unary = [bit for gap in gaps for bit in [0] * (gap >> p) + [1]]
    remainders = [(gap >> i) & 1 for gap in gaps for i in range(p)]
    return pack(unary) + pack(remainders)


@settings(max_examples=200, deadline=None)
@given(values=st.sets(st.integers(0, 2**40 - 1), min_size=1, max_size=60), p=st.integers(0, 44))
def test_the_coding_is_the_documented_bit_layout_and_decodes_back(values, p):
    ordered = sorted(values)
    if sum(b - a for a, b in zip([0, *ordered], ordered)) >> p > 1 << 20:
        p = 30  # keep the unary stream of a tiny P over a wide range to a sane length
    encoded = encode_set(np.array(ordered, dtype=np.uint64), p)
    assert encoded.data == reference_encoding(ordered, p)
    assert (encoded.count, encoded.rice_parameter) == (len(ordered), p)
    decoded = decode_set(encoded.data, encoded.count, p, encoded.quotient_bytes, 2**40)
    assert decoded.tolist() == ordered


def test_the_encoder_chooses_the_rice_parameter_that_makes_the_code_shortest():
    values = np.unique(np.random.default_rng(5).integers(0, 5000 * 10**6, 5000, dtype=np.uint64))
    best = encode_set(values)
    sizes = {p: len(encode_set(values, p).data) for p in range(best.rice_parameter - 3, best.rice_parameter + 4)}
    assert len(best.data) == min(sizes.values()) and sizes[best.rice_parameter] == len(best.data)


def test_repeated_hashes_are_coded_once():
    assert encode_set(np.array([5, 9, 5, 9, 1], dtype=np.uint64)).count == 3
    with pytest.raises(ValueError, match="at least one"):
        encode_set(np.array([], dtype=np.uint64))


@pytest.mark.parametrize("error_rate", [1e-3, 2.2e-8, 1e-10])
def test_a_coded_set_takes_about_log2_of_the_inverse_rate_plus_one_and_a_half_bits_an_element(error_rate):
    n = 20_000
    hash_range = filters.hash_range_for(n, error_rate)
    values = np.random.default_rng(6).integers(0, hash_range, n, dtype=np.uint64)
    bits = len(encode_set(values).data) * 8 / n
    assert bits == pytest.approx(fprate.rice_bits_per_element(error_rate), abs=0.05)
    assert 1.40 < bits - math.log2(1 / error_rate) < 1.60


def test_a_lookups_false_positive_rate_is_the_share_of_the_range_the_set_covers():
    n, error_rate = 2_000, 1e-3
    hash_range = filters.hash_range_for(n, error_rate)
    values = decode_set_of(np.random.default_rng(7).integers(0, hash_range, n, dtype=np.uint64), hash_range)
    probes = element_hashes(random_rows(2_000_000, 8), hash_range)
    hits = contains(values, probes).sum()
    expected = 2_000_000 * len(values) / hash_range  # 2,000 probes; a Poisson count: 5 sigma is 224
    assert abs(hits - expected) < 5 * math.sqrt(expected)


def decode_set_of(values: np.ndarray, hash_range: int) -> np.ndarray:
    encoded = encode_set(values)
    return decode_set(encoded.data, encoded.count, encoded.rice_parameter, encoded.quotient_bytes, hash_range)


def test_membership_finds_exactly_the_members():
    values = np.array([0, 3, 17, 2**40], dtype=np.uint64)
    queries = np.array([0, 1, 3, 16, 17, 18, 2**40, 2**40 + 1], dtype=np.uint64)
    assert contains(values, queries).tolist() == [True, False, True, False, True, False, True, False]
    assert contains(np.array([], dtype=np.uint64), queries).tolist() == [False] * 8


VALUES = np.array([7, 100, 101, 5000, 77_777], dtype=np.uint64)
GOOD = encode_set(VALUES, 6)


def refused(
    data: bytes,
    count: int = GOOD.count,
    p: int = GOOD.rice_parameter,
    quotient_bytes: int = GOOD.quotient_bytes,
    hash_range: int = 100_000,
) -> str:
    with pytest.raises(ValueError) as caught:
        decode_set(data, count, p, quotient_bytes, hash_range)
    return str(caught.value)


def test_the_canonical_encoding_decodes_and_every_flipped_bit_is_refused_or_changes_the_set():
    assert decode_set(GOOD.data, GOOD.count, 6, GOOD.quotient_bytes, 100_000).tolist() == VALUES.tolist()
    for bit in range(len(GOOD.data) * 8):
        changed = bytearray(GOOD.data)
        changed[bit // 8] ^= 1 << (bit % 8)
        try:
            decoded = decode_set(bytes(changed), GOOD.count, 6, GOOD.quotient_bytes, 100_000)
        except ValueError:
            continue
        assert decoded.tolist() != VALUES.tolist()  # a remainder bit: another set, which the body digest catches


def test_malformed_sections_are_refused_saying_what_is_wrong():
    assert "implies" in refused(GOOD.data + b"\0")
    assert "implies" in refused(GOOD.data[:-1])
    four = GOOD.data[: GOOD.quotient_bytes + 3]  # the length 4 codes of P = 6 would take, holding 5 codes
    assert "exactly 4 codes" in refused(four, count=4)
    assert "below the hash range" in refused(GOOD.data, hash_range=77_777)
    assert "at least one" in refused(b"", count=0)
    assert "Rice parameter" in refused(GOOD.data, p=57)
    padded = bytearray(GOOD.data)
    padded[-1] |= 0x80  # the remainder stream's last padding bit (5 x 6 = 30 bits: two pad bits)
    assert "padding" in refused(bytes(padded))
    extra = encode_set(VALUES, 6)
    unary_end = bytearray(extra.data[: extra.quotient_bytes]) + b"\0"  # an extra 0 byte after the last code
    assert "exactly 5 codes" in refused(
        bytes(unary_end) + extra.data[extra.quotient_bytes :], quotient_bytes=extra.quotient_bytes + 1
    )


def test_a_repeated_hash_in_the_stream_is_refused():
    unary = bytes([0b11])  # gaps 0 and 0 with P = 0: the hashes 0 and 0
    with pytest.raises(ValueError, match="strictly increasing"):
        decode_set(unary, 2, 0, 1, 10)


def test_a_gap_that_would_overflow_64_bits_is_refused():
    quotients = np.zeros(3, dtype=np.uint8)
    quotients[0], quotients[2] = 0b1, 0b1000_0000  # second code after 22 zero bits: quotient 22
    data = quotients.tobytes() + b"\xff" * 14  # P = 56: remainders of all ones
    with pytest.raises(ValueError, match="larger than the hash range"):
        decode_set(data, 2, 56, 3, 2**56)
