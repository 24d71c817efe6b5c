"""GAEN key cryptography (Exposure Notification Cryptography Specification v1.2), whole keys at a time.

Byte layouts (all from the specification):

- TEK: 16 random bytes, one per UTC day (or per rolling period).
- RPIK = HKDF-SHA256(IKM=TEK, salt=None, info=b"EN-RPIK", L=16)
- AEMK = HKDF-SHA256(IKM=TEK, salt=None, info=b"EN-AEMK", L=16)
- PaddedData_j = b"EN-RPI" || 0x00 * 6 || uint32_le(ENIN_j)            (16 bytes)
- RPI_j = AES-128-ECB(RPIK, PaddedData_j)
- AEM_j = AES-128-CTR(AEMK, counter block = RPI_j, metadata)         (metadata is 4 bytes)

Every interval of a key is derived in one AES call over all of its padded blocks, never one call per interval.
Arrays of identifiers are ``numpy.uint8`` arrays of shape ``(n, 16)``.
"""

from __future__ import annotations

import os

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from numpy.typing import NDArray

KEY_BYTES = 16
RPI_BYTES = 16
METADATA_BYTES = 4
_RPI_PREFIX = np.frombuffer(b"EN-RPI", dtype=np.uint8)


def new_tek() -> bytes:
    """A fresh temporary exposure key from the operating system's CSPRNG."""
    return os.urandom(KEY_BYTES)


def _hkdf16(tek: bytes, info: bytes) -> bytes:
    if len(tek) != KEY_BYTES:
        raise ValueError(f"a temporary exposure key is {KEY_BYTES} bytes, got {len(tek)}")
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=info).derive(tek)


def rpik(tek: bytes) -> bytes:
    """The Rolling Proximity Identifier Key of a TEK."""
    return _hkdf16(tek, b"EN-RPIK")


def aemk(tek: bytes) -> bytes:
    """The Associated Encrypted Metadata Key of a TEK."""
    return _hkdf16(tek, b"EN-AEMK")


def aes_ecb(key: bytes, blocks: NDArray[np.uint8] | bytes, out: NDArray[np.uint8] | None = None) -> NDArray[np.uint8]:
    """AES-128-ECB over a whole buffer of 16-byte blocks in one cipher call; returns ``(n, 16)`` uint8.

    ``update_into`` a preallocated buffer: on large buffers it is ~10x faster than ``update``, which allocates
    a fresh bytes object. ``out`` (uint8, at least ``16n + 15`` bytes: pyca/cryptography wants 15 bytes of room)
    is reused when given, which spares a fresh, page-faulting allocation per call in loops.
    """
    data = (
        np.frombuffer(blocks, dtype=np.uint8)
        if isinstance(blocks, bytes)
        else np.ascontiguousarray(blocks, dtype=np.uint8)
    )
    if out is None or out.size < data.size + 15:
        out = np.empty(data.size + 15, dtype=np.uint8)
    if data.size:
        encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        encryptor.update_into(data.data, out.data)  # the arrays' buffers (memoryviews), written in place
    return out[: data.size].reshape(-1, 16)


def padded_data(intervals: NDArray[np.integer]) -> NDArray[np.uint8]:
    """``b"EN-RPI" || 0x00*6 || uint32_le(i)`` for each interval number, as ``(n, 16)`` uint8."""
    intervals = np.asarray(intervals, dtype=np.uint32)
    blocks = np.zeros((intervals.size, 16), dtype=np.uint8)
    blocks[:, :6] = _RPI_PREFIX
    blocks[:, 12:16] = intervals.astype("<u4").view(np.uint8).reshape(-1, 4)
    return blocks


def rpis(tek: bytes, rolling_start: int, rolling_period: int = 144) -> NDArray[np.uint8]:
    """The RPIs a key broadcasts in intervals ``rolling_start .. rolling_start + rolling_period - 1``."""
    intervals = np.arange(rolling_start, rolling_start + rolling_period, dtype=np.uint32)
    return aes_ecb(rpik(tek), padded_data(intervals))


def rpi_at(tek: bytes, interval: int) -> bytes:
    """The single RPI of a key at one interval."""
    return rpis(tek, interval, 1).tobytes()


def metadata_keystream(aemk_: bytes, rpis_: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The AES-CTR keystream block for each RPI used as counter block: ``AES-ECB(AEMK, RPI)``.

    Metadata is 4 bytes, so only the first counter block is ever used, and CTR for many RPIs of one key is a
    single ECB call. XOR its first 4 bytes with metadata to encrypt or decrypt.
    """
    return aes_ecb(aemk_, np.ascontiguousarray(rpis_, dtype=np.uint8))


def encrypt_metadata(aemk_: bytes, rpi: bytes, metadata: bytes) -> bytes:
    """AEM for one RPI. AES-CTR is its own inverse, so this also decrypts."""
    if len(metadata) != METADATA_BYTES:
        raise ValueError(f"associated metadata is {METADATA_BYTES} bytes, got {len(metadata)}")
    keystream = metadata_keystream(aemk_, np.frombuffer(rpi, dtype=np.uint8).reshape(1, 16))
    stream: NDArray[np.uint8] = keystream[0, :METADATA_BYTES]
    return (np.frombuffer(metadata, dtype=np.uint8) ^ stream).tobytes()


decrypt_metadata = encrypt_metadata


def ble_metadata(tx_power_dbm: int, major: int = 1, minor: int = 0) -> bytes:
    """GAEN Bluetooth metadata: version byte (major in bits 7-6, minor in 5-4), signed TX power, 2 reserved."""
    if not -128 <= tx_power_dbm <= 127:
        raise ValueError("TX power must fit a signed byte")
    return bytes([(major << 6) | (minor << 4), tx_power_dbm & 0xFF, 0, 0])


def tx_power_of(metadata: NDArray[np.uint8] | bytes) -> NDArray[np.int16]:
    """The signed TX power byte of decrypted metadata (one 4-byte row each), as int16 dBm."""
    rows = np.frombuffer(metadata, dtype=np.uint8) if isinstance(metadata, bytes) else metadata
    return rows.reshape(-1, METADATA_BYTES)[:, 1].view(np.int8).astype(np.int16)
