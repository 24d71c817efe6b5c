"""Bloom filters of element tags: the tag, the bit positions, pybloom-live's sizing and layout, bulk insert and query.

docs/spec.md is the normative description; this module is its reference implementation. Pure functions, numpy
in and out: no clock, no I/O. Every array of tags or RPIs is ``numpy.uint8`` of shape ``(n, 16)``.

- Element tag of ``(RPI, i)`` in a batch with salt ``S`` (a two-block CBC-MAC keyed by the salt)::

      T = AES-128-ECB_S( AES-128-ECB_S(RPI) XOR pad(i) ),   pad(i) = uint32_le(i) || 0x00 * 12

- Bit positions: the tag is expanded by AES-128-ECB under a fixed, public key ``POSITION_KEY`` into
  ``B_c = AES-128-ECB_POSITION_KEY(T XOR ctr(c))``, ``ctr(c) = uint32_le(c) || 0x00 * 12``, for
  ``c = 0 .. ceil(k/2) - 1``; the bit in slice ``j`` (``0 <= j < k``) is ``uint64_le(B_{j//2}[8*(j%2) : 8*(j%2)+8])
  mod bits_per_slice``, whose global index is ``j * bits_per_slice`` plus that. Every slice gets its own 64
  independent-looking bits. (Double hashing, ``h1 + j*h2 mod bits_per_slice``, was the first design; it fixes all
  k positions by ``h1, h2 mod bits_per_slice`` and the wrap pattern, which puts a floor of about
  ``n / bits_per_slice**2`` under the false-positive rate: 2.7e-6 measured for a one-case filter sized for
  2.4e-11. docs/spec.md, "Why not double hashing".)
- The filter is a pybloom-live ``BloomFilter`` (a partitioned filter: ``k`` slices of ``bits_per_slice`` bits in one
  little-endian bit array, bit ``b`` being bit ``b & 7`` of byte ``b >> 3``) sized by pybloom-live's own rule, and
  serialised as its ``tofile`` image: ``struct '<dQQQQ'`` (error_rate, num_slices, bits_per_slice, capacity, count),
  40 bytes, then the bit array's bytes. pybloom-live is the container; our index rule replaces its hashing
  (:class:`TagBloomFilter`), and bulk insert and bulk query work on its bit array directly with numpy.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pybloom_live import BloomFilter

from .crypto import aes_ecb

TAG_BYTES = 16
SALT_BYTES = 16
FILE_HEADER = struct.Struct(BloomFilter.FILE_FMT.decode())  # '<dQQQQ', 40 bytes
# A bound on k that no sensible error rate reaches (k = 64 is eps = 5e-20); it keeps a malformed header from
# asking for absurd work before anything else is checked.
MAX_NUM_SLICES = 64
# The client rule tests an observation at i_observed - t .. i_observed + t (docs/spec.md, "Matching").
DEFAULT_TOLERANCE = 1

# The key that expands a tag into one 64-bit word per slice. It is public and fixed: the tag is already a function
# of the batch's salt, and nothing about the positions needs to be secret, only independent of one another.
POSITION_KEY = hashlib.sha256(b"exposure.v1 bloom bit positions").digest()[:16]
_WORDS_PER_BLOCK = 2

# Work sizes. Tags are processed in chunks so that temporaries stay a few MiB whatever the batch size; bits are
# set through a bool array (one byte per bit) covering a window of slices of at most this many bits.
_CHUNK = 1 << 18
_WINDOW_BITS = 1 << 28


def _check_salt(salt: bytes) -> None:
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a batch salt is {SALT_BYTES} bytes, got {len(salt)}")


def _rows(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.uint8)
    if array.ndim != 2 or array.shape[1] != TAG_BYTES:
        raise ValueError(f"{name} must have shape (n, {TAG_BYTES}), got {array.shape}")
    return array


def encrypt_rpis(rpis: np.ndarray, salt: bytes) -> np.ndarray:
    """The first CBC-MAC block ``AES-128-ECB_S(RPI)``, which does not depend on the interval.

    Matching tests one observation at 2t+1 intervals: it computes this once and :func:`tags_from_encrypted` per
    interval.
    """
    _check_salt(salt)
    return aes_ecb(salt, _rows(rpis, "rpis"))


def tags_from_encrypted(encrypted: np.ndarray, intervals: np.ndarray, salt: bytes) -> np.ndarray:
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


def element_tags(rpis: np.ndarray, intervals: np.ndarray, salt: bytes) -> np.ndarray:
    """The 16-byte tag of each ``(rpis[n], intervals[n])`` under batch salt ``salt``: ``(n, 16)`` uint8.

    Two AES calls in all, each over every row.
    """
    return tags_from_encrypted(encrypt_rpis(rpis, salt), intervals, salt)


def _halves(tags: np.ndarray) -> np.ndarray:
    """Each tag as its two little-endian 64-bit words, ``(n, 2)`` uint64."""
    return np.ascontiguousarray(_rows(tags, "tags")).view("<u8").astype(np.uint64, copy=False)


def _block_words(halves: np.ndarray, c: int, blocks: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``B_c = AES_POSITION_KEY(T XOR ctr(c))`` of each tag as ``(n, 2)`` uint64: word ``w`` serves slice ``2c + w``.

    ``blocks`` (``(N, 2)`` uint64, N >= n) and ``out`` (uint8, ``16N + 15``) are reusable buffers.
    """
    n = len(halves)
    # ctr(c) occupies bytes 0..3, the low bytes of the first little-endian word
    np.bitwise_xor(halves[:, 0], np.uint64(c), out=blocks[:n, 0])
    blocks[:n, 1] = halves[:, 1]
    return aes_ecb(POSITION_KEY, blocks[:n].view(np.uint8), out).view("<u8").astype(np.uint64, copy=False)


def _buffers(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((n, 2), dtype=np.uint64), np.empty(n * TAG_BYTES + 15, dtype=np.uint8)


def slice_words(tags: np.ndarray, first: int, end: int) -> np.ndarray:
    """The 64-bit word of each tag for each slice ``first .. end - 1``: ``(n, end - first)`` uint64.

    Word ``j`` is ``uint64_le(B_{j//2}[8*(j%2) : 8*(j%2)+8])`` with ``B_c = AES_POSITION_KEY(T XOR ctr(c))``.
    """
    halves = _halves(tags)
    buffers = _buffers(len(halves))
    blocks = range(first // _WORDS_PER_BLOCK, -(-end // _WORDS_PER_BLOCK))
    words = np.zeros((len(halves), _WORDS_PER_BLOCK * len(blocks)), dtype=np.uint64)
    for n, c in enumerate(blocks):  # _block_words returns a view of the reused buffer: copy each out
        words[:, _WORDS_PER_BLOCK * n : _WORDS_PER_BLOCK * (n + 1)] = _block_words(halves, c, *buffers)
    skip = first % _WORDS_PER_BLOCK
    return words[:, skip : skip + end - first]


def _mod_into(words: np.ndarray, modulus: np.uint64, out: np.ndarray) -> np.ndarray:
    """``words % modulus`` into ``out``: floor_divide by a scalar (libdivide in numpy) beats ``%`` by a third."""
    np.floor_divide(words, modulus, out=out)
    np.multiply(out, modulus, out=out)
    np.subtract(words, out, out=out)
    return out


def bit_positions(tags: np.ndarray, num_slices: int, bits_per_slice: int) -> np.ndarray:
    """Global bit index of each tag in each slice: ``(n, k)`` uint64, column j = ``j*bits_per_slice + position``.

    The reference form of the index rule; insertion and lookup compute the same numbers a window at a time.
    """
    words = slice_words(tags, 0, num_slices)
    modulus = np.uint64(bits_per_slice)
    return words % modulus + np.arange(num_slices, dtype=np.uint64) * modulus


@dataclass(frozen=True)
class FilterParams:
    """The shape of one Bloom filter: what its tofile header and the batch header's FilterInfo both carry."""

    capacity: int
    error_rate: float
    num_slices: int
    bits_per_slice: int

    @classmethod
    def for_capacity(cls, capacity: int, error_rate: float) -> FilterParams:
        """pybloom-live's sizing rule, in its exact floating-point form (``BloomFilter.__init__``).

        ``k = ceil(ln(1/eps) / ln 2)`` and ``bits_per_slice = ceil(n * |ln eps| / (k * (ln 2)**2))``, in IEEE
        doubles, in this order of operations; ``math.log(x, 2)`` is ``log(x) / log(2)``, not ``log2(x)``.
        """
        if not 0 < error_rate < 1:
            raise ValueError(f"the error rate must be between 0 and 1, got {error_rate}")
        if capacity <= 0:
            raise ValueError(f"the capacity must be positive, got {capacity}")
        num_slices = int(math.ceil(math.log(1.0 / error_rate, 2)))
        bits_per_slice = int(math.ceil((capacity * abs(math.log(error_rate))) / (num_slices * (math.log(2) ** 2))))
        return cls(capacity, error_rate, num_slices, bits_per_slice)

    @property
    def num_bits(self) -> int:
        return self.num_slices * self.bits_per_slice

    @property
    def bit_array_bytes(self) -> int:
        return (self.num_bits + 7) // 8

    @property
    def image_bytes(self) -> int:
        """Length of the tofile image: the 40-byte header and the bit array."""
        return FILE_HEADER.size + self.bit_array_bytes


class TagBloomFilter(BloomFilter):
    """pybloom-live's BloomFilter with our index rule in place of its own hashing.

    Everything else is pybloom-live's: sizing, the bit array, ``tofile``/``fromfile``, and ``in`` (which now takes
    a 16-byte tag). ``tag in filter`` is the one-at-a-time reference for :func:`contains`.
    """

    def _setup(self, error_rate: float, num_slices: int, bits_per_slice: int, capacity: int, count: int) -> None:
        super()._setup(error_rate, num_slices, bits_per_slice, capacity, count)
        self.make_hashes = self._tag_positions

    def _tag_positions(self, tag: bytes) -> Iterator[int]:
        """Position of ``tag`` within each slice, in slice order (what pybloom-live's make_hashes yields)."""
        if len(tag) != TAG_BYTES:
            raise ValueError(f"a tag is {TAG_BYTES} bytes, got {len(tag)}")
        blocks = -(-self.num_slices // _WORDS_PER_BLOCK)
        value = int.from_bytes(tag, "little")
        # T XOR ctr(c): the counter sits in the first four bytes, the least significant ones of a little-endian int
        stream = b"".join((value ^ c).to_bytes(TAG_BYTES, "little") for c in range(blocks))
        expanded = aes_ecb(POSITION_KEY, stream).tobytes()
        for j in range(self.num_slices):
            yield int.from_bytes(expanded[8 * j : 8 * j + 8], "little") % self.bits_per_slice

    @property
    def params(self) -> FilterParams:
        return FilterParams(self.capacity, self.error_rate, self.num_slices, self.bits_per_slice)

    def bits(self) -> np.ndarray:
        """The bit array's bytes as a uint8 numpy view (no copy; writes go into the filter)."""
        return np.frombuffer(self.bitarray, dtype=np.uint8)


def _windows(params: FilterParams) -> Iterator[tuple[int, int]]:
    """Groups of slices ``[first, end)`` whose bits start on a byte boundary and fit in one bool window."""
    per_window = max(8, (_WINDOW_BITS // params.bits_per_slice) // 8 * 8)
    for first in range(0, params.num_slices, per_window):
        yield first, min(first + per_window, params.num_slices)


def build_filter(tags: np.ndarray, params: FilterParams) -> TagBloomFilter:
    """A filter of these (distinct) tags; its ``count`` is their number, which must not exceed the capacity.

    How bits are set (measured on 36 slices of 1.4 M bits, 36 M positions): a bool array with one byte per bit,
    ``bools[positions] = True`` and then ``np.packbits(bitorder="little")`` took 0.20 s; ``np.bitwise_or.at`` on the
    packed bytes 0.60 s (114 ns a position once the array outgrows the caches, against 17 ns for the bool scatter);
    eight masked ``|=`` passes (one per bit of a byte, so duplicate indices write equal values) 1.0 s;
    sort + unique + ``bitwise_or.reduceat`` 13 s. A plain scatter has no read-modify-write and no duplicate
    problem, so it wins; the bool array is 8x the filter, so it covers a window of whole slices at a time (a
    multiple of 8, so that each window packs to whole bytes). Memory: the tags, the filter, one window, and
    buffers of ``_CHUNK`` rows.
    """
    tags = _rows(tags, "tags")
    if len(tags) > params.capacity:
        raise ValueError(f"{len(tags)} tags do not fit a filter of capacity {params.capacity}")
    bloom = TagBloomFilter(params.capacity, params.error_rate)
    if bloom.params != params:
        raise ValueError(f"{params} is not pybloom-live's sizing for capacity {params.capacity}")
    packed = bloom.bits()
    bits_per_slice = params.bits_per_slice
    modulus = np.uint64(bits_per_slice)
    word, position = np.empty((2, min(len(tags), _CHUNK)), dtype=np.uint64)
    buffers = _buffers(len(word))
    for first, end in _windows(params):
        window = np.zeros((end - first) * bits_per_slice, dtype=bool)
        # Counter-block-major: the two slices of block c are finished for every tag before the next block, so the
        # scatter stays within 2 x bits_per_slice bytes of the window (cache-resident for batches of typical size).
        for c in range(first // _WORDS_PER_BLOCK, -(-end // _WORDS_PER_BLOCK)):
            for start in range(0, len(tags), _CHUNK):
                words = _block_words(_halves(tags[start : start + _CHUNK]), c, *buffers)
                n = len(words)
                for j in range(_WORDS_PER_BLOCK * c, min(_WORDS_PER_BLOCK * (c + 1), end)):
                    # a contiguous copy first: dividing it is ~3x faster than dividing the 16-byte-strided column
                    np.copyto(word[:n], words[:, j % _WORDS_PER_BLOCK])
                    _mod_into(word[:n], modulus, position[:n])
                    offset = (j - first) * bits_per_slice
                    # int64 view: positions are < 2**63, and fancy indexing would otherwise make a converted copy
                    window[offset : offset + bits_per_slice][position[:n].view(np.int64)] = True
        byte = first * bits_per_slice // 8
        chunk = np.packbits(window, bitorder="little")
        packed[byte : byte + len(chunk)] = chunk
    bloom.count = len(tags)
    return bloom


def contains(bloom: TagBloomFilter, tags: np.ndarray) -> np.ndarray:
    """Membership of each tag: ``(n,)`` bool. Same answer as ``tag in bloom``, for whole arrays.

    Slice by slice, only the tags still possibly present are looked at (and expanded): an absent tag survives a
    slice with probability about 1/2, so the whole test costs about two slices' work.
    """
    tags = _rows(tags, "tags")
    packed = bloom.bits()
    modulus = np.uint64(bloom.bits_per_slice)
    present = np.zeros(len(tags), dtype=bool)
    buffers = _buffers(min(len(tags), _CHUNK))
    for start in range(0, len(tags), _CHUNK):
        halves = _halves(tags[start : start + _CHUNK])
        alive = np.arange(start, start + len(halves))
        for c in range(-(-bloom.num_slices // _WORDS_PER_BLOCK)):
            words = _block_words(halves, c, *buffers)
            for j in range(_WORDS_PER_BLOCK * c, min(_WORDS_PER_BLOCK * (c + 1), bloom.num_slices)):
                index = words[:, j % _WORDS_PER_BLOCK] % modulus + np.uint64(j * bloom.bits_per_slice)
                bit = (packed.take(index >> np.uint64(3)) >> (index & np.uint64(7)).astype(np.uint8)) & 1
                # take() with positions: boolean-mask indexing of these arrays is ~10x slower
                keep = np.flatnonzero(bit)
                alive, halves, words = alive.take(keep), halves.take(keep, axis=0), words.take(keep, axis=0)
            if not len(alive):
                break
        present[alive] = True
    return present


def filter_image(bloom: BloomFilter) -> bytes:
    """The filter's wire form: exactly what pybloom-live's ``tofile`` writes."""
    out = io.BytesIO()
    bloom.tofile(out)
    return out.getvalue()


def read_image_header(image: bytes) -> tuple[FilterParams, int]:
    """The params and count from a tofile image's 40-byte header, after checking the image's length.

    Raises ValueError for an image whose header is malformed or does not fit its length.
    """
    if len(image) < FILE_HEADER.size:
        raise ValueError(f"a filter image is at least {FILE_HEADER.size} bytes, got {len(image)}")
    error_rate, num_slices, bits_per_slice, capacity, count = FILE_HEADER.unpack_from(image)
    if not 0 < error_rate < 1:
        raise ValueError(f"the filter's error rate {error_rate} is not between 0 and 1")
    if not 1 <= num_slices <= MAX_NUM_SLICES or bits_per_slice < 1:
        raise ValueError(f"the filter's shape ({num_slices} slices of {bits_per_slice} bits) is not usable")
    params = FilterParams(capacity, error_rate, num_slices, bits_per_slice)
    if len(image) != params.image_bytes:
        raise ValueError(f"the filter image is {len(image)} bytes, its header implies {params.image_bytes}")
    if count > capacity:
        raise ValueError(f"the filter holds {count} elements, more than its capacity {capacity}")
    return params, count


def load_filter(image: bytes) -> TagBloomFilter:
    """A filter from its tofile image, through pybloom-live's ``fromfile``, once the header has been checked."""
    read_image_header(image)
    return TagBloomFilter.fromfile(io.BytesIO(image))
