"""Writes docs/spec-vectors.json: test vectors for independent implementations of docs/spec.md.

    python -m matcher.spec_vectors [PATH]

Everything is derived from fixed labels (no randomness), so running it again gives the same file byte for byte;
tests/unit/test_spec_vectors.py checks that, and checks the vectors through a second, one-element-at-a-time
implementation. The signatures in ``signed_batch_files`` use RFC 6979 deterministic ECDSA for the same reason;
a verifier does not care how the nonce was chosen.

- ``tag_cases``: TEK and interval -> RPI -> tag under a salt -> global bit index in each slice.
- ``batches``: one risk class each, keys without days since onset (so every interval of each key's validity is
  an element), the filter's tofile image, and probes (elements, random identifiers, and replays of a key's
  identifier at intervals it was not broadcast in) with the membership a correct implementation finds.
- ``signed_batch_files``: a whole batch file (docs/spec.md, "Batch file") and the pinned public key, once intact
  and twice with one flipped bit, with the verdict a correct verifier reaches.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from . import crypto, fprate
from .batches import BATCH_FILE_MAGIC, build_batch, sign_header
from .exposure_config import default_config
from .filters import FilterParams, bit_positions, contains, element_tags, load_filter
from .model import DiagnosisKey, ReportType
from .signing import SigningKey, public_pem

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "docs" / "spec-vectors.json"
DAY = 2642976  # 2020-04-02 00:00 UTC, the day of Google's GAEN test vectors
PUBLISHED_AT = 1585958400  # 2020-04-04 00:00 UTC
DEFAULT_ERROR_RATE = fprate.error_rate_for(default_config())

# (interval, bits_per_slice, k): realistic shapes from the sizing rule, and edges of the arithmetic (one bit per
# slice, a power of two, a slice wider than 2**32 bits, the first and last 32-bit interval numbers).
_SHAPES = [FilterParams.for_capacity(capacity, eps) for capacity, eps in
           [(1152, DEFAULT_ERROR_RATE), (144, 0.001), (1_000_000, 1e-6), (37, 0.01), (50_000, 1e-9)]]
_TAG_CASES = [
    (DAY + n * 7, shape.bits_per_slice, shape.num_slices) for n, shape in enumerate(_SHAPES * 3)
] + [
    (DAY, 1, 3),
    (DAY + 143, 1024, 8),
    (DAY + 1000, 7, 5),
    (DAY + 12345, (1 << 33) + 1, 40),
    (0, 997, 12),
    (0xFFFFFFFF, 65537, 20),
]


def _bytes(label: str, n: int = 16) -> bytes:
    return hashlib.sha256(b"exposure spec vectors: " + label.encode()).digest()[:n]


@dataclass(frozen=True)
class _DeterministicKey(SigningKey):
    """A signing key whose ECDSA nonces follow RFC 6979, so that the vector file is reproducible."""

    def sign(self, domain: bytes, payload: bytes) -> bytes:
        return self.private_key.sign(domain + payload, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))


def vector_signing_key() -> SigningKey:
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # of P-256's base point
    scalar = int.from_bytes(_bytes("signing key", 32), "big") % (order - 1) + 1
    return _DeterministicKey(ec.derive_private_key(scalar, ec.SECP256R1()))


def tag_cases() -> list[dict[str, Any]]:
    cases = []
    for n, (interval, bits_per_slice, k) in enumerate(_TAG_CASES):
        tek, salt = _bytes(f"tek {n}"), _bytes(f"salt {n % 4}")
        rpi = crypto.rpi_at(tek, interval)
        tag = element_tags(np.frombuffer(rpi, np.uint8).reshape(1, 16), np.array([interval]), salt)
        positions = bit_positions(tag, k, bits_per_slice)[0]
        cases.append({
            "tek": tek.hex(), "interval": interval, "rpi": rpi.hex(), "salt": salt.hex(), "tag": tag[0].tobytes().hex(),
            "bits_per_slice": bits_per_slice, "k": k, "positions": [int(p) for p in positions],
        })
    return cases


# Batch name -> (error rate, keys as (rolling_start, rolling_period)).
_BATCHES = {
    "a": (0.001, [(DAY - 144, 144), (DAY, 144), (DAY + 3, 144)]),
    "b": (DEFAULT_ERROR_RATE, [(DAY + 100, 37), (DAY + 72, 144)]),
}


def _batch_keys(name: str) -> list[DiagnosisKey]:
    return [
        DiagnosisKey(_bytes(f"batch {name} key {n}"), start, period, ReportType.CONFIRMED_TEST)
        for n, (start, period) in enumerate(_BATCHES[name][1])
    ]


def _probes(name: str, keys: list[DiagnosisKey]) -> list[tuple[bytes, int, bool]]:
    """(rpi, interval, really an element): elements, then identifiers that are not, each for a reason."""
    probes: list[tuple[bytes, int, bool]] = []
    for key in keys:
        for interval in (key.rolling_start, key.rolling_start + key.rolling_period // 2, key.end_interval - 1):
            probes.append((crypto.rpi_at(key.key_data, interval), interval, True))
    first = keys[0]
    rpi = crypto.rpi_at(first.key_data, first.rolling_start + 5)
    probes.append((rpi, first.rolling_start + 5, True))
    for wrong in (1, -1, 2, 144):  # replays: the identifier heard at another interval than it was broadcast in
        probes.append((rpi, first.rolling_start + 5 + wrong, False))
    probes.append((crypto.rpi_at(first.key_data, first.end_interval), first.end_interval, False))  # past validity
    probes.append((crypto.rpi_at(first.key_data, first.rolling_start - 1), first.rolling_start - 1, False))
    for n in range(4):  # identifiers of keys that were never published
        probes.append((crypto.rpi_at(_bytes(f"batch {name} stranger {n}"), DAY + 10 * n), DAY + 10 * n, False))
    return probes


def batches() -> list[dict[str, Any]]:
    out = []
    signing_key = vector_signing_key()
    for name, (error_rate, _) in _BATCHES.items():
        keys = _batch_keys(name)
        salt = _bytes(f"batch {name} salt")
        built = build_batch(keys, sequence=1, published_at=PUBLISHED_AT, region="VN", config=default_config(),
                            signing_key=signing_key, error_rate=error_rate, salt=salt)
        (info,) = built.header.filters
        bloom = load_filter(built.body)
        probes = _probes(name, keys)
        rpis = np.frombuffer(b"".join(rpi for rpi, _, _ in probes), np.uint8).reshape(-1, 16)
        found = contains(bloom, element_tags(rpis, np.array([i for _, i, _ in probes]), salt))
        if [bool(f) for f in found] != [truth for _, _, truth in probes]:
            raise AssertionError(f"batch {name}: a probe meant to be absent is a false positive; change a label")
        out.append({
            "salt": salt.hex(),
            "error_rate": error_rate,
            "keys": [{"tek": k.key_data.hex(), "rolling_start": k.rolling_start, "rolling_period": k.rolling_period}
                     for k in keys],
            "capacity": info.capacity,
            "count": info.count,
            "num_slices": info.num_slices,
            "bits_per_slice": info.bits_per_slice,
            "filter_sha256": info.sha256.hex(),
            "filter_tofile_hex": built.body.hex(),
            "probes": [{"rpi": rpi.hex(), "interval": i, "expected": truth} for rpi, i, truth in probes],
        })
    return out


def signed_batch_files() -> list[dict[str, Any]]:
    signing_key = vector_signing_key()
    keys = _batch_keys("b")
    built = build_batch(keys, sequence=7, published_at=PUBLISHED_AT, region="VN", config=default_config(),
                        signing_key=signing_key, error_rate=_BATCHES["b"][0], salt=_bytes("batch b salt"))
    signed = sign_header(built.header, signing_key)
    envelope = signed.SerializeToString(deterministic=True)
    intact = BATCH_FILE_MAGIC + len(envelope).to_bytes(4, "little") + envelope + built.body
    header_at = intact.index(signed.header)
    cases = [
        ("intact", intact, True),
        ("one bit flipped in the signed header bytes", _flip(intact, header_at + 3), False),
        ("one bit flipped in the filter bytes", _flip(intact, len(intact) - 5), False),
    ]
    public = public_pem(signing_key.private_key.public_key()).decode()
    header = {"sequence": 7, "published_at": PUBLISHED_AT, "first_interval": built.header.first_interval,
              "last_interval": built.header.last_interval, "region": "VN", "salt": built.header.salt.hex()}
    return [
        {"description": description, "public_key_pem": public, "key_id": signing_key.key_id,
         "batch_file_hex": data.hex(), "valid": valid, **({"header": header} if valid else {})}
        for description, data, valid in cases
    ]


def _flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x10
    return bytes(changed)


def generate() -> dict[str, Any]:
    return {
        "description": "Test vectors for docs/spec.md; generated by `python -m matcher.spec_vectors`.",
        "tag_cases": tag_cases(),
        "batches": batches(),
        "signed_batch_files": signed_batch_files(),
    }


def render(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT_PATH
    path.write_text(render(generate()))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
