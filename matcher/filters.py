"""Element tags, element hashes and Golomb-Rice coded sets: the published structure and its lookups.

docs/spec.md is the normative description; this module is its reference implementation. Pure functions, numpy
in and out: no clock, no I/O. Every array of tags or RPIs is ``numpy.uint8`` of shape ``(n, 16)``.

- Element tag of ``(RPI, i)`` in a batch with salt ``S`` (a two-block CBC-MAC keyed by the salt)::

      T = AES-128-ECB_S( AES-128-ECB_S(RPI) XOR pad(i) ),   pad(i) = uint32_le(i) || 0x00 * 12

- Element hash: ``uint64_le(T[0:8]) mod U``, where ``U`` is the batch's hash range (``N x M`` for ``N`` elements and
  a false-positive rate of about ``1/M`` a lookup).
- A set of hashes is sorted and its gaps are Golomb-Rice coded with a parameter ``P``, in two streams: the
  quotients ``gap >> P`` in unary (that many 0 bits, then a 1), then the remainders ``gap mod 2^P`` in P bits each.
  Bits are little-endian within bytes, each stream padded with 0 bits to a whole byte. Two streams rather than
  BIP 158's interleaved codes: the same size, and both can be decoded (and encoded) with whole-array operations.

Why a Golomb-coded set and not a Bloom filter: a Bloom filter spends ``1.44 x log2(1/eps)`` bits per element, a
Golomb-Rice coded set about ``log2(1/eps) + 1.5`` (``log2(e)`` for coding a random set, plus the Rice code's
rounding of its parameter to a power of two), 28% fewer at the rates this service needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .crypto import aes_ecb

TAG_BYTES = 16
SALT_BYTES = 16
# The largest hash range: hashes come from 64 bits of the tag, and ``h mod U`` is uniform to within one part in
# 2^64 / U. Up to 2^56 that is 1/256 or better, so the false-positive rate stays what the range promises.
MAX_HASH_RANGE = 1 << 56
# A gap is below the hash range, so a Rice parameter above 56 only adds 0 bits.
MAX_RICE_PARAMETER = 56

# Remainders are packed and unpacked this many at a time: a multiple of 8, so each chunk's bits start on a byte.
_CHUNK = 1 << 20


def _check_salt(salt: bytes) -> None:
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a batch salt is {SALT_BYTES} bytes, got {len(salt)}")


def _rows(array: ArrayLike, name: str) -> NDArray[np.uint8]:
    array = np.asarray(array, dtype=np.uint8)
    if array.ndim != 2 or array.shape[1] != TAG_BYTES:
        raise ValueError(f"{name} must have shape (n, {TAG_BYTES}), got {array.shape}")
    return array


# --- Tags and hashes -------------------------------------------------------------------------------------------


def encrypt_rpis(rpis: ArrayLike, salt: bytes) -> NDArray[np.uint8]:
    """The first CBC-MAC block ``AES-128-ECB_S(RPI)``, which does not depend on the interval.

    Matching may test one observation at several intervals: it computes this once and
    :func:`tags_from_encrypted` per interval.
    """
    _check_salt(salt)
    return aes_ecb(salt, _rows(rpis, "rpis"))


def tags_from_encrypted(encrypted: NDArray[np.uint8], intervals: ArrayLike, salt: bytes) -> NDArray[np.uint8]:
    """``AES-128-ECB_S(encrypted XOR pad(i))``: the second CBC-MAC block, one cipher call for all rows."""
    _check_salt(salt)
    intervals = np.asarray(intervals)
    if intervals.shape != (len(encrypted),):
        raise ValueError(f"need one interval per row: {len(encrypted)} rows, intervals of shape {intervals.shape}")
    if intervals.size and (intervals.min() < 0 or intervals.max() > 0xFFFFFFFF):
        raise ValueError("interval numbers must fit an unsigned 32-bit integer")
    blocks = np.array(encrypted, dtype=np.uint8, copy=True)
    blocks[:, :4] ^= intervals.astype("<u4").view(np.uint8).reshape(-1, 4)
    return aes_ecb(salt, blocks)


def element_tags(rpis: ArrayLike, intervals: ArrayLike, salt: bytes) -> NDArray[np.uint8]:
    """The 16-byte tag of each ``(rpis[n], intervals[n])`` under batch salt ``salt``: ``(n, 16)`` uint8.

    Two AES calls in all, each over every row.
    """
    return tags_from_encrypted(encrypt_rpis(rpis, salt), intervals, salt)


def _check_hash_range(hash_range: int) -> np.uint64:
    if not 1 <= hash_range <= MAX_HASH_RANGE:
        raise ValueError(f"a hash range is 1..2^56, got {hash_range}")
    return np.uint64(hash_range)


def element_hashes(tags: ArrayLike, hash_range: int) -> NDArray[np.uint64]:
    """``uint64_le(T[0:8]) mod U`` of each tag: ``(n,)`` uint64."""
    words = np.ascontiguousarray(_rows(tags, "tags")[:, :8]).view("<u8").reshape(-1).astype(np.uint64, copy=False)
    return words % _check_hash_range(hash_range)


def hash_range_for(elements: int, error_rate: float) -> int:
    """``U = N x M`` with ``M = ceil(1 / error_rate)``: a lookup then hits one of N hashes with probability at
    most ``1/M <= error_rate``. Raises ValueError when U would exceed MAX_HASH_RANGE (cut smaller batches)."""
    if not 0 < error_rate < 1:
        raise ValueError(f"the error rate must be between 0 and 1, got {error_rate}")
    if elements < 1:
        raise ValueError(f"a set has at least one element, got {elements}")
    hash_range = elements * math.ceil(1 / error_rate)
    if hash_range > MAX_HASH_RANGE:
        raise ValueError(
            f"{elements:,} elements at error rate {error_rate:.3g} need a hash range of {hash_range:,}, more than "
            f"2^56: cut smaller batches"
        )
    return hash_range


# --- Golomb-Rice coded sets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedSet:
    """A section's bytes and the numbers its header entry carries."""

    data: bytes
    count: int
    rice_parameter: int
    quotient_bytes: int


def _gaps(values: NDArray[np.uint64]) -> NDArray[np.uint64]:
    gaps = np.empty_like(values)
    gaps[:1] = values[:1]
    np.subtract(values[1:], values[:-1], out=gaps[1:])
    return gaps


def coded_bits(gaps: NDArray[np.uint64], rice_parameter: int) -> int:
    """Bits of the two streams before padding: ``sum(gap >> P) + n`` unary and ``n x P`` remainder bits."""
    quotients = int(np.sum(gaps >> np.uint64(rice_parameter), dtype=np.uint64))
    return quotients + len(gaps) * (1 + rice_parameter)


def best_rice_parameter(gaps: NDArray[np.uint64]) -> int:
    """The P that makes these gaps' code shortest (the smaller P on a tie).

    For gaps of mean g the optimum lies near ``log2(g x ln 2)``; the candidates around it are measured exactly.
    """
    mean = max(float(np.mean(gaps, dtype=np.float64)), 1.0)
    guess = max(0, min(MAX_RICE_PARAMETER, round(math.log2(mean * math.log(2)))))
    candidates = range(max(0, guess - 2), min(MAX_RICE_PARAMETER, guess + 2) + 1)
    return min(candidates, key=lambda p: (coded_bits(gaps, p), p))


def encode_set(values: ArrayLike, rice_parameter: int | None = None) -> EncodedSet:
    """The Golomb-Rice code of a set of distinct hashes (any order); P is the best one unless given."""
    ordered = np.sort(np.asarray(values, dtype=np.uint64))  # sort and drop repeats: np.unique hashes, 10x slower
    if not len(ordered):
        raise ValueError("a coded set has at least one element")
    distinct = ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]
    gaps = _gaps(distinct)
    p = best_rice_parameter(gaps) if rice_parameter is None else rice_parameter
    if not 0 <= p <= MAX_RICE_PARAMETER:
        raise ValueError(f"a Rice parameter is 0..{MAX_RICE_PARAMETER}, got {p}")
    quotients = (gaps >> np.uint64(p)).astype(np.int64)
    # Unary: quotient j is q_j zero bits and a one; the ones sit at the running sums of (q + 1), minus one.
    ones = np.cumsum(quotients + 1) - 1
    unary = np.zeros(int(ones[-1]) + 1, dtype=bool)
    unary[ones] = True
    quotient_stream = np.packbits(unary, bitorder="little")
    # Remainders: each gap's low P bits, in order. A little-endian word's bits, unpacked little-endian, are its
    # bits from the lowest up, so the first P columns are exactly the remainder's bits in stream order.
    words = gaps.astype("<u8").view(np.uint8).reshape(-1, 8)
    parts = [quotient_stream.tobytes()]
    for start in range(0, len(gaps), _CHUNK):
        bits = np.unpackbits(words[start : start + _CHUNK], axis=1, count=p, bitorder="little")
        parts.append(np.packbits(bits.reshape(-1), bitorder="little").tobytes())
    return EncodedSet(b"".join(parts), len(distinct), p, len(quotient_stream))


def remainder_bytes(count: int, rice_parameter: int) -> int:
    return (count * rice_parameter + 7) // 8


def decode_set(
    data: bytes, count: int, rice_parameter: int, quotient_bytes: int, hash_range: int
) -> NDArray[np.uint64]:
    """The sorted hashes of a coded set, ``(count,)`` uint64, after checking that the bytes are exactly the
    canonical code of ``count`` distinct hashes below ``hash_range``. Raises ValueError saying what is wrong."""
    limit = _check_hash_range(hash_range)
    if count < 1:
        raise ValueError("a section holds at least one element")
    if not 0 <= rice_parameter <= MAX_RICE_PARAMETER:
        raise ValueError(f"the Rice parameter {rice_parameter} is not 0..{MAX_RICE_PARAMETER}")
    expected = quotient_bytes + remainder_bytes(count, rice_parameter)
    if quotient_bytes < 1 or len(data) != expected:
        raise ValueError(f"the section is {len(data)} bytes, its header implies {expected}")
    buffer = np.frombuffer(data, dtype=np.uint8)
    ones = np.flatnonzero(np.unpackbits(buffer[:quotient_bytes], bitorder="little"))
    if len(ones) != count or ones[-1] // 8 != quotient_bytes - 1:
        raise ValueError(f"the quotient stream does not hold exactly {count} codes ending in its last byte")
    quotients = np.diff(ones, prepend=-1).astype(np.uint64) - np.uint64(1)
    shift = np.uint64(rice_parameter)
    if quotients.max() > (limit - np.uint64(1)) >> shift:
        raise ValueError("a gap is larger than the hash range")
    gaps = (quotients << shift) | _remainders(buffer[quotient_bytes:], count, rice_parameter)
    values = np.cumsum(gaps, dtype=np.uint64)
    # Each gap is below 2^57, so a sum that wrapped around 2^64 would show as a decrease.
    if count > 1 and not (values[1:] > values[:-1]).all():
        raise ValueError("the hashes are not strictly increasing")
    if values[-1] >= limit:
        raise ValueError(f"a hash is not below the hash range {hash_range}")
    return values


def _remainders(stream: NDArray[np.uint8], count: int, rice_parameter: int) -> NDArray[np.uint64]:
    """The P-bit remainders, each read as the little-endian 64-bit word at its first byte, shifted and masked.

    A remainder starts at bit ``j x P``: byte ``(j x P) >> 3``, bit ``(j x P) & 7``, and ``P + 7 <= 63`` bits from
    there fit one word. The stream is padded with 8 zero bytes so that the last words can be read whole.
    """
    if not rice_parameter:
        return np.zeros(count, dtype=np.uint64)
    total_bits = count * rice_parameter
    padding = np.unpackbits(stream[-1:], bitorder="little")[total_bits - 8 * (len(stream) - 1) :]
    if padding.any():
        raise ValueError("the remainder stream's padding bits are not 0")
    padded = np.concatenate([stream, np.zeros(8, dtype=np.uint8)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 8)
    out = np.empty(count, dtype=np.uint64)
    mask = np.uint64((1 << rice_parameter) - 1)
    for start in range(0, count, _CHUNK):
        bit = np.arange(start, min(start + _CHUNK, count), dtype=np.uint64) * np.uint64(rice_parameter)
        words = np.ascontiguousarray(windows[(bit >> np.uint64(3)).astype(np.intp)]).view("<u8").reshape(-1)
        out[start : start + len(bit)] = (words.astype(np.uint64) >> (bit & np.uint64(7))) & mask
    return out


def contains(values: NDArray[np.uint64], queries: ArrayLike) -> NDArray[np.bool_]:
    """Which queries are in the sorted hashes ``values``: ``(n,)`` bool."""
    queries = np.asarray(queries, dtype=np.uint64)
    if not len(values) or not queries.size:
        return np.zeros(queries.shape, dtype=bool)
    # The queries are searched in ascending order: numpy's binary search then starts each one where the previous
    # ended and walks the values once, cache-friendly. For a phone's day (10^5 hashes against sections of
    # 5 x 10^4) that is 5x faster than searching them in the random order they come in, sorting included. Then
    # the few hashes found are looked for among the queries in their own order.
    ascending = np.sort(queries, axis=None)
    index = np.minimum(np.searchsorted(values, ascending), len(values) - 1)
    return np.isin(queries, ascending[values[index] == ascending])
