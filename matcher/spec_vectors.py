"""Writes docs/spec-vectors.json: test vectors for independent implementations of docs/spec.md.

    python -m matcher.spec_vectors [PATH]

Everything is derived from fixed labels (no randomness), so running it again gives the same file byte for byte;
tests/unit/test_spec_vectors.py checks that, and checks the vectors through a second, one-element-at-a-time
implementation. The signatures in ``signed_batch_files`` use RFC 6979 deterministic ECDSA for the same reason;
a verifier does not care how the nonce was chosen.

- ``tag_cases``: TEK and interval -> RPI -> tag under a salt -> element hash in a hash range.
- ``coded_sets``: sorted hashes -> Golomb-Rice code with a given parameter (both streams), including edges.
- ``batches``: keys with their report types and days since onset, the sections they form under the default
  exposure configuration, the body, and probes (observations at a time) with the section and interval a correct
  implementation finds, or none: elements heard mid-interval and within the clock skew of a neighbour, replays
  beyond it, identifiers outside a key's validity and identifiers of unpublished keys.
- ``signed_batch_files``: a whole batch file (docs/spec.md, "Batch file") and the pinned public key, once intact
  and with one flipped bit in each part, with the verdict a correct verifier reaches.
- ``signed_mirror_indexes``: the static mirror's signed index (docs/spec.md, "Static mirror") listing that batch
  file, intact, with a flipped bit in its signed bytes or its signature, and signed under another domain.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from exposure.v1 import batch_pb2, config_pb2, mirror_pb2

from . import crypto, fprate
from .batches import (
    BATCH_FILE_MAGIC,
    BuiltBatch,
    SectionClass,
    build_batch,
    match,
    match_venue_hours,
    open_batch,
    section_of,
    sign_header,
)
from .exposure_config import default_config, sign_config
from .filters import MAX_HASH_RANGE, element_hashes, element_tags, encode_set
from .intervals import CLOCK_SKEW_SECONDS
from .mirror import file_name, sign_index
from .model import DiagnosisKey, Infectiousness, ReportType, VenueHour
from .signing import DOMAIN_BATCH_HEADER, SigningKey, TrustedKeys, public_pem
from .venues import VenueOwner, hour_identifiers

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "docs" / "spec-vectors.json"
DAY = 2642976  # 2020-04-02 00:00 UTC, the day of Google's GAEN test vectors
PUBLISHED_AT = 1585958400  # 2020-04-04 00:00 UTC
DEFAULT_ERROR_RATE = fprate.error_rate_for()

# (interval, hash range): the default sizing for a 5-day case, and edges of the arithmetic (a range of 1, a power
# of two, a prime, the largest range, the first and last 32-bit interval numbers).
_CASE_RANGE = 720 * math.ceil(1 / DEFAULT_ERROR_RATE)
_TAG_CASES = [
    (DAY + n * 7, hash_range) for n, hash_range in enumerate([_CASE_RANGE, 1152 * 10**8, 10**6, 2**32, 999_983] * 3)
] + [
    (DAY, 1),
    (DAY + 143, 2),
    (DAY + 1000, MAX_HASH_RANGE),
    (DAY + 12345, MAX_HASH_RANGE - 1),
    (0, 2**40 + 15),
    (0xFFFFFFFF, 65537),
]
# Coded sets: (label, values, Rice parameter or None for the encoder's best).
_CODED_SETS: list[tuple[str, list[int] | None, int | None]] = [
    ("one hash, P = 0", [0], 0),
    ("one hash, best P", [123_456_789], None),
    ("small gaps, P = 1", [1, 2, 3, 5, 8, 13, 21, 34, 55, 89], 1),
    ("a remainder stream ending on a byte", [3, 250, 251, 1000, 4000, 4001, 9999, 12000], 8),
    ("ten uniform hashes at the default rate", None, None),  # filled below
    ("P = 56: the largest parameter", [2**55 + 1, 2**56 - 2], 56),
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
    for n, (interval, hash_range) in enumerate(_TAG_CASES):
        tek, salt = _bytes(f"tek {n}"), _bytes(f"salt {n % 4}")
        rpi = crypto.rpi_at(tek, interval)
        tag = element_tags(np.frombuffer(rpi, np.uint8).reshape(1, 16), np.array([interval]), salt)
        cases.append(
            {
                "tek": tek.hex(),
                "interval": interval,
                "rpi": rpi.hex(),
                "salt": salt.hex(),
                "tag": tag[0].tobytes().hex(),
                "hash_range": hash_range,
                "hash": int(element_hashes(tag, hash_range)[0]),
            }
        )
    return cases


def coded_sets() -> list[dict[str, Any]]:
    out = []
    for label, values, parameter in _CODED_SETS:
        if values is None:
            hash_range = 10 * math.ceil(1 / DEFAULT_ERROR_RATE)
            values = sorted(int.from_bytes(_bytes(f"uniform {n}", 8), "little") % hash_range for n in range(10))
        encoded = encode_set(np.array(values, dtype=np.uint64), parameter)
        out.append(
            {
                "description": label,
                "hashes": values,
                "rice_parameter": encoded.rice_parameter,
                "quotient_bytes": encoded.quotient_bytes,
                "encoded_hex": encoded.data.hex(),
            }
        )
    return out


# Batch name -> (error rate, keys as (rolling_start, rolling_period, report type, days since onset)).
_BATCHES: dict[str, tuple[float, list[tuple[int, int, ReportType, int | None]]]] = {
    "a": (
        0.001,
        [
            (DAY - 144, 144, ReportType.CONFIRMED_TEST, None),
            (DAY, 144, ReportType.CONFIRMED_TEST, 0),
            (DAY + 3, 144, ReportType.CONFIRMED_CLINICAL_DIAGNOSIS, None),
        ],
    ),
    "b": (
        DEFAULT_ERROR_RATE,
        [(DAY + 100, 37, ReportType.CONFIRMED_TEST, 2), (DAY + 72, 144, ReportType.SELF_REPORT, -1)],
    ),
}


def _batch_keys(name: str) -> list[DiagnosisKey]:
    return [
        DiagnosisKey(_bytes(f"batch {name} key {n}"), start, period, report_type, onset)
        for n, (start, period, report_type, onset) in enumerate(_BATCHES[name][1])
    ]


# A probe: an RPI heard at a time, and the key and interval it is an element of at that time (None, None if not).
_Probe = tuple[bytes, int, DiagnosisKey | None, int | None]


def _published_section(key: DiagnosisKey, config: config_pb2.ExposureConfig) -> SectionClass:
    section = section_of(key, config)
    if section is None:
        raise ValueError(f"a probe's key is not published under the configuration: {key}")
    return section


def _probes(name: str, keys: list[DiagnosisKey]) -> list[_Probe]:
    """Elements heard in mid-interval and at the edges of the clock skew, then identifiers that are no element at
    the time they were heard, each for a reason."""
    probes: list[_Probe] = []
    for key in keys:
        for interval in (key.rolling_start, key.rolling_start + key.rolling_period // 2, key.end_interval - 1):
            probes.append((crypto.rpi_at(key.key_data, interval), interval * 600 + 300, key, interval))
    first = keys[0]
    interval = first.rolling_start + 5
    rpi, start = crypto.rpi_at(first.key_data, interval), interval * 600
    for heard in (start, start + 599, start - CLOCK_SKEW_SECONDS, start + 600 + CLOCK_SKEW_SECONDS - 1):
        probes.append((rpi, heard, first, interval))  # within the clock skew of the element's interval
    for heard in (start - CLOCK_SKEW_SECONDS - 1, start + 600 + CLOCK_SKEW_SECONDS, start + 1500, start + 86400):
        probes.append((rpi, heard, None, None))  # replays: heard too long before or after its interval
    past = first.end_interval
    probes.append((crypto.rpi_at(first.key_data, past), past * 600 + 300, None, None))  # past the key's validity
    before = first.rolling_start - 1
    probes.append((crypto.rpi_at(first.key_data, before), before * 600 + 300, None, None))
    for n in range(4):  # identifiers of keys that were never published
        interval = DAY + 10 * n
        probes.append((crypto.rpi_at(_bytes(f"batch {name} stranger {n}"), interval), interval * 600 + 300, None, None))
    return probes


def batches() -> list[dict[str, Any]]:
    out = []
    signing_key = vector_signing_key()
    trusted = TrustedKeys([signing_key.verifying_key()])
    config = default_config()
    for name, (error_rate, _) in _BATCHES.items():
        keys = _batch_keys(name)
        salt = _bytes(f"batch {name} salt")
        built = build_batch(
            keys,
            sequence=1,
            published_at=PUBLISHED_AT,
            region="VN",
            config=config,
            signing_key=signing_key,
            error_rate=error_rate,
            salt=salt,
        )
        header, sections = open_batch(sign_header(built.header, signing_key), built.body, trusted)
        classes = [section.section_class for section in sections]
        probes = _probes(name, keys)
        expected = [
            (-1, None) if key is None else (classes.index(_published_section(key, config)), interval)
            for _, _, key, interval in probes
        ]
        rpis = np.frombuffer(b"".join(rpi for rpi, *_ in probes), np.uint8).reshape(-1, 16)
        found = match(header, sections, rpis, np.array([time for _, time, *_ in probes]))
        got = [(int(s), int(i) if s >= 0 else None) for s, i in zip(found.section, found.interval)]
        if got != expected:
            raise AssertionError(f"batch {name}: a probe meant to be absent is a false positive; change a label")
        out.append(
            {
                "salt": salt.hex(),
                "error_rate": error_rate,
                "keys": [
                    {
                        "tek": k.key_data.hex(),
                        "rolling_start": k.rolling_start,
                        "rolling_period": k.rolling_period,
                        "report_type": ReportType(k.report_type).name,
                        "days_since_onset": k.days_since_onset,
                    }
                    for k in keys
                ],
                "sections": [
                    {
                        "report_types": [ReportType(r).name for r in info.report_types],
                        "infectiousness": [Infectiousness(i).name for i in info.infectiousness],
                        "offset": info.offset,
                        "length": info.length,
                        "count": info.count,
                        "hash_range": info.hash_range,
                        "rice_parameter": info.rice_parameter,
                        "quotient_bytes": info.quotient_bytes,
                    }
                    for info in header.sections
                ],
                "body_sha256": header.body_sha256.hex(),
                "body_hex": built.body.hex(),
                "probes": [
                    {"rpi": rpi.hex(), "observed_at": time, "section": section, "interval": interval}
                    for (rpi, time, *_), (section, interval) in zip(probes, expected)
                ],
            }
        )
    return out


def _batch_file(signing_key: SigningKey) -> tuple[BuiltBatch, batch_pb2.SignedBatchHeader, bytes]:
    """Batch b as a signed batch file (§11): the built batch, its signed header and the file's bytes."""
    built = build_batch(
        _batch_keys("b"),
        sequence=7,
        published_at=PUBLISHED_AT,
        region="VN",
        config=default_config(),
        signing_key=signing_key,
        error_rate=_BATCHES["b"][0],
        salt=_bytes("batch b salt"),
    )
    signed = sign_header(built.header, signing_key)
    envelope = signed.SerializeToString(deterministic=True)
    return built, signed, BATCH_FILE_MAGIC + len(envelope).to_bytes(4, "little") + envelope + built.body


def signed_batch_files() -> list[dict[str, Any]]:
    signing_key = vector_signing_key()
    built, signed, intact = _batch_file(signing_key)
    header_at = intact.index(signed.header)
    cases = [
        ("intact", intact, True),
        ("one bit flipped in the signed header bytes", _flip(intact, header_at + 3), False),
        ("one bit flipped in the signature", _flip(intact, intact.index(signed.signature) + 10), False),
        ("one bit flipped in the body", _flip(intact, len(intact) - 5), False),
    ]
    public = public_pem(signing_key.private_key.public_key()).decode()
    header = {
        "sequence": 7,
        "published_at": PUBLISHED_AT,
        "first_interval": built.header.first_interval,
        "last_interval": built.header.last_interval,
        "region": "VN",
        "salt": built.header.salt.hex(),
        "format_version": built.header.format_version,
        "hash_ranges": [info.hash_range for info in built.header.sections],
    }
    return [
        {
            "description": description,
            "public_key_pem": public,
            "key_id": signing_key.key_id,
            "batch_file_hex": data.hex(),
            "valid": valid,
            **({"header": header} if valid else {}),
        }
        for description, data, valid in cases
    ]


def signed_mirror_indexes() -> list[dict[str, Any]]:
    """The static mirror's index (§14) listing the intact batch file of ``signed_batch_files``, signed; then with a
    bit flipped in its signed bytes, in its signature, and signed under the batch header's domain instead."""
    signing_key = vector_signing_key()
    _, _, data = _batch_file(signing_key)
    config = default_config()
    config.version, config.issued_at = 1, PUBLISHED_AT - 86400
    index = mirror_pb2.MirrorIndex(
        newest_sequence=7,
        written_at=PUBLISHED_AT + 60,
        files=[
            mirror_pb2.MirrorFile(
                sequence=7, name=file_name(7, data), size=len(data), sha256=hashlib.sha256(data).digest()
            )
        ],
        exposure_config=sign_config(config, signing_key),
    )
    signed = sign_index(index, signing_key)
    wrong_domain = mirror_pb2.SignedMirrorIndex()
    wrong_domain.CopyFrom(signed)
    wrong_domain.signature = signing_key.sign(DOMAIN_BATCH_HEADER, signed.index)
    flipped_index, flipped_signature = mirror_pb2.SignedMirrorIndex(), mirror_pb2.SignedMirrorIndex()
    flipped_index.CopyFrom(signed)
    flipped_index.index = _flip(signed.index, 5)
    flipped_signature.CopyFrom(signed)
    flipped_signature.signature = _flip(signed.signature, 10)
    cases = [
        ("intact", signed, True),
        ("one bit flipped in the signed index bytes", flipped_index, False),
        ("one bit flipped in the signature", flipped_signature, False),
        ("signed under the batch header's domain", wrong_domain, False),
    ]
    public = public_pem(signing_key.private_key.public_key()).decode()
    return [
        {
            "description": description,
            "public_key_pem": public,
            "key_id": signing_key.key_id,
            "signed_index_hex": envelope.SerializeToString(deterministic=True).hex(),
            "valid": valid,
            **(
                {
                    "newest_sequence": 7,
                    "written_at": PUBLISHED_AT + 60,
                    "files": [
                        {
                            "sequence": 7,
                            "name": file_name(7, data),
                            "size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest(),
                        }
                    ],
                }
                if valid
                else {}
            ),
        }
        for description, envelope, valid in cases
    ]


def _vector_owner(label: str, name: str) -> VenueOwner:
    return VenueOwner.from_seed(_bytes(f"venue {label}", 32), name)


VENUE_HOUR = PUBLISHED_AT // 3600 - 30  # 2020-04-02 18:00 UTC


def venue_cases() -> list[dict[str, Any]]:
    """Venues: a seed -> the payload, venue_id, hourly identifiers and a warning's signature (§13), and a batch
    whose venue section holds two warned hours of the first venue, with probes."""
    owners = [_vector_owner("a", "Phở Hà Nội, 12 Lý Quốc Sư"), _vector_owner("b", "Library")]
    cases = []
    for label, owner in zip("ab", owners):
        hours = [0, VENUE_HOUR, VENUE_HOUR + 1, 0xFFFFFFFF]
        identifiers = hour_identifiers(owner.venue.venue_id, np.array(hours))
        cases.append(
            {
                "private_key_seed": _bytes(f"venue {label}", 32).hex(),
                "name": owner.venue.name,
                "public_key": owner.venue.public_key.hex(),
                "payload": owner.venue.payload(),
                "venue_id": owner.venue.venue_id.hex(),
                "hours": [{"hour": h, "identifier": i.tobytes().hex()} for h, i in zip(hours, identifiers)],
                "warning": {
                    "first_hour": VENUE_HOUR,
                    "last_hour": VENUE_HOUR + 1,
                    "signature": owner.sign_warning(VENUE_HOUR, VENUE_HOUR + 1).hex(),
                },
            }
        )
    return cases


def venue_batch() -> dict[str, Any]:
    owner, other = _vector_owner("a", "Phở Hà Nội, 12 Lý Quốc Sư"), _vector_owner("b", "Library")
    warned = [
        VenueHour(i.tobytes(), h)
        for h, i in zip(
            (VENUE_HOUR, VENUE_HOUR + 1), hour_identifiers(owner.venue.venue_id, np.array([VENUE_HOUR, VENUE_HOUR + 1]))
        )
    ]
    signing_key = vector_signing_key()
    salt = _bytes("venue batch salt")
    built = build_batch(
        [],
        sequence=1,
        published_at=PUBLISHED_AT,
        region="VN",
        config=default_config(),
        signing_key=signing_key,
        error_rate=DEFAULT_ERROR_RATE,
        salt=salt,
        venue_hours=warned,
        venue_error_rate=fprate.venue_error_rate(),
    )
    header, sections = open_batch(
        sign_header(built.header, signing_key), built.body, TrustedKeys([signing_key.verifying_key()])
    )
    probes = [(owner, hour, hour in (VENUE_HOUR, VENUE_HOUR + 1)) for hour in range(VENUE_HOUR - 1, VENUE_HOUR + 3)]
    probes += [(other, VENUE_HOUR, False)]
    found = match_venue_hours(
        header,
        sections,
        np.concatenate([hour_identifiers(o.venue.venue_id, np.array([h])) for o, h, _ in probes]),
        np.array([h for _, h, _ in probes]),
    )
    if found.tolist() != [truth for *_, truth in probes]:
        raise AssertionError("venue batch: a probe meant to be absent is a false positive; change a label")
    [info] = header.sections
    return {
        "salt": salt.hex(),
        "hash_range": info.hash_range,
        "count": info.count,
        "rice_parameter": info.rice_parameter,
        "quotient_bytes": info.quotient_bytes,
        "body_hex": built.body.hex(),
        "published_at": PUBLISHED_AT,
        "probes": [{"venue_id": o.venue.venue_id.hex(), "hour": h, "expected": truth} for o, h, truth in probes],
    }


def _flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x10
    return bytes(changed)


def generate() -> dict[str, Any]:
    return {
        "description": "Test vectors for docs/spec.md (publication format 2); generated by "
        "`python -m matcher.spec_vectors`.",
        "tag_cases": tag_cases(),
        "coded_sets": coded_sets(),
        "batches": batches(),
        "signed_batch_files": signed_batch_files(),
        "signed_mirror_indexes": signed_mirror_indexes(),
        "venues": venue_cases(),
        "venue_batch": venue_batch(),
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
