"""Batches: diagnosis keys in, signed header and filter body out; and, for phones, verify-then-match.

A batch is one Bloom filter per risk class (report type x infectiousness x TX power) that has keys, all under one
fresh 16-byte salt, and a header that says where each filter sits in the body, its parameters and its SHA-256. The
header travels as a SignedBatchHeader: the exact serialised BatchHeader bytes and an ECDSA P-256 signature over
``DOMAIN_BATCH_HEADER || those bytes``. Verifiers check the signature over the bytes, then parse them; nothing is
ever re-serialised. docs/spec.md is the normative description; this module implements it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from exposure.v1 import batch_pb2, config_pb2
from google.protobuf.message import DecodeError

from . import crypto
from .exposure_config import infectiousness_of
from .filters import (
    DEFAULT_TOLERANCE,
    SALT_BYTES,
    FilterParams,
    TagBloomFilter,
    build_filter,
    contains,
    element_tags,
    encrypt_rpis,
    filter_image,
    load_filter,
    read_image_header,
    tags_from_encrypted,
)
from .model import (
    MAX_TX_POWER_DBM,
    MIN_TX_POWER_DBM,
    PUBLISHABLE_REPORT_TYPES,
    DiagnosisKey,
    Infectiousness,
    ReportType,
    tx_power_class,
)
from .signing import DOMAIN_BATCH_HEADER, SignatureError, SigningKey, TrustedKeys

# A risk class is one filter: (report type, infectiousness, TX power class in dBm or None when unknown).
RiskClass = tuple[ReportType, Infectiousness, int | None]
PUBLISHED_INFECTIOUSNESS = (Infectiousness.STANDARD, Infectiousness.HIGH)
TX_POWER_CLASSES: tuple[int | None, ...] = (
    None,
    *sorted({tx_power_class(dbm) for dbm in range(MIN_TX_POWER_DBM, MAX_TX_POWER_DBM + 1)}),
)


def header_order(risk_class: RiskClass) -> tuple[int, int, bool, int]:
    """Filters follow each other by report type, then infectiousness, then TX power (unknown first)."""
    report_type, infectiousness, tx_power = risk_class
    return report_type, infectiousness, tx_power is not None, tx_power or 0


# Every class a batch may carry, in header order: the bound on filters per batch that false-positive sizing uses.
RISK_CLASSES: tuple[RiskClass, ...] = tuple(
    sorted(
        ((report_type, infectiousness, tx) for report_type in PUBLISHABLE_REPORT_TYPES
         for infectiousness in PUBLISHED_INFECTIOUSNESS for tx in TX_POWER_CLASSES),
        key=header_order,
    )
)
_PUBLISHED = frozenset(RISK_CLASSES)

# The batch file (`matcher inspect FILE`): magic, uint32_le length of the SignedBatchHeader, its bytes, the body.
BATCH_FILE_MAGIC = b"EXPOSURE BATCH 1"
_LENGTH = struct.Struct("<I")

# Keys are turned into tags a group at a time, so that RPIs and intermediate blocks stay a few MiB.
_ELEMENTS_PER_GROUP = 1 << 18


class BatchRejected(ValueError):
    """A batch that must not be used; the message says why, for a person."""


@dataclass(frozen=True)
class BuiltBatch:
    """A batch as the publisher cuts it: the header to sign, the body, and what went into it."""

    header: batch_pb2.BatchHeader
    body: bytes
    keys_published: int
    elements: int


@dataclass(frozen=True)
class LoadedFilter:
    """One verified filter of a batch and its entry in the header."""

    info: batch_pb2.FilterInfo
    bloom: TagBloomFilter

    @property
    def risk_class(self) -> RiskClass:
        return risk_class_of_info(self.info)


def risk_class_of_info(info: batch_pb2.FilterInfo) -> RiskClass:
    tx_power = info.tx_power_dbm if info.HasField("tx_power_dbm") else None
    return ReportType(info.report_type), Infectiousness(info.infectiousness), tx_power


# --- Building ------------------------------------------------------------------------------------------------


def risk_class_of(key: DiagnosisKey, config: config_pb2.ExposureConfig) -> RiskClass | None:
    """The filter a key is published in, or None when it is not published at all."""
    if key.report_type not in PUBLISHABLE_REPORT_TYPES or key.rolling_period < 1:
        return None
    infectiousness = infectiousness_of(config, key.days_since_onset)
    if infectiousness == Infectiousness.NONE:
        return None
    return ReportType(key.report_type), infectiousness, tx_power_class(key.tx_power)


def key_elements(keys: Sequence[DiagnosisKey]) -> tuple[np.ndarray, np.ndarray]:
    """The RPI and interval of every interval of every key's validity, keys in order: ``(n, 16)`` and ``(n,)``.

    One HKDF and one AES call per key, each writing straight into the shared output buffer; the padded blocks
    and interval numbers of all keys are built with numpy at once.
    """
    periods = np.fromiter((key.rolling_period for key in keys), dtype=np.int64, count=len(keys))
    starts = np.fromiter((key.rolling_start for key in keys), dtype=np.int64, count=len(keys))
    ends = np.cumsum(periods)
    firsts = ends - periods
    total = int(ends[-1]) if len(keys) else 0
    intervals = np.repeat(starts - firsts, periods) + np.arange(total, dtype=np.int64)
    blocks = crypto.padded_data(intervals)
    out = np.empty(total * 16 + 15, dtype=np.uint8)  # update_into wants 15 bytes of room past the end
    source, target = memoryview(blocks).cast("B"), memoryview(out)  # slicing memoryviews is cheaper than arrays
    for key, first, end in zip(keys, (firsts * 16).tolist(), (ends * 16).tolist()):
        encryptor = Cipher(algorithms.AES(crypto.rpik(key.key_data)), modes.ECB()).encryptor()
        encryptor.update_into(source[first:end], target[first : end + 15])
    return out[: total * 16].reshape(-1, 16), intervals


def class_tags(keys: Sequence[DiagnosisKey], salt: bytes) -> np.ndarray:
    """Tags of every element of these keys, ``(n, 16)`` uint8: two salt-keyed AES calls per group of keys."""
    periods = [key.rolling_period for key in keys]
    tags = np.empty((sum(periods), 16), dtype=np.uint8)
    done = begin = 0
    while begin < len(keys):
        end, size = begin, 0
        while end < len(keys) and (size == 0 or size + periods[end] <= _ELEMENTS_PER_GROUP):
            size += periods[end]
            end += 1
        rpis, intervals = key_elements(keys[begin:end])
        tags[done : done + size] = element_tags(rpis, intervals, salt)
        done += size
        begin = end
    return tags


def build_batch(
    keys: Sequence[DiagnosisKey],
    *,
    sequence: int,
    published_at: int,
    region: str,
    config: config_pb2.ExposureConfig,
    signing_key: SigningKey,
    error_rate: float,
    salt: bytes | None = None,
) -> BuiltBatch:
    """The batch of these keys: one filter per risk class with keys, each sized for exactly its elements.

    A key's elements are ``(RPI_i, i)`` for every interval ``i`` of its validity; keys that are not published
    (report type, infectiousness NONE) and repeats of a key already included contribute nothing. With no element
    at all, the header has no filters and the body is empty. The header still has to be signed (sign_header).
    """
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a batch salt is {SALT_BYTES} bytes, got {len(salt)}")
    by_class: dict[RiskClass, list[DiagnosisKey]] = {}
    seen: set[bytes] = set()
    for key in keys:
        risk_class = risk_class_of(key, config)
        fingerprint = key.fingerprint()
        if risk_class is None or fingerprint in seen:
            continue
        seen.add(fingerprint)
        by_class.setdefault(risk_class, []).append(key)

    header = batch_pb2.BatchHeader(
        sequence=sequence,
        published_at=published_at,
        salt=salt,
        signing_key_id=signing_key.key_id,
        signing_key_version=signing_key.version,
        region=region,
    )
    images: list[bytes] = []
    offset = 0
    for risk_class in sorted(by_class, key=header_order):
        report_type, infectiousness, tx_power = risk_class
        tags = class_tags(by_class[risk_class], salt)
        params = FilterParams.for_capacity(len(tags), error_rate)
        image = filter_image(build_filter(tags, params))
        header.filters.append(
            batch_pb2.FilterInfo(
                report_type=report_type,
                infectiousness=infectiousness,
                tx_power_dbm=tx_power,
                offset=offset,
                length=len(image),
                sha256=hashlib.sha256(image).digest(),
                capacity=params.capacity,
                error_rate=params.error_rate,
                num_slices=params.num_slices,
                bits_per_slice=params.bits_per_slice,
                count=len(tags),
            )
        )
        images.append(image)
        offset += len(image)
    published = [key for class_keys in by_class.values() for key in class_keys]
    if published:
        header.first_interval = min(key.rolling_start for key in published)
        header.last_interval = max(key.end_interval for key in published) - 1
    header.body_size = offset
    return BuiltBatch(
        header=header,
        body=b"".join(images),
        keys_published=len(published),
        elements=sum(key.rolling_period for key in published),
    )


def sign_header(header: batch_pb2.BatchHeader, signing_key: SigningKey) -> batch_pb2.SignedBatchHeader:
    """The envelope phones receive: the header's bytes, serialised once, and the signature over them."""
    if (header.signing_key_id, header.signing_key_version) != (signing_key.key_id, signing_key.version):
        raise ValueError(
            f"the header names signing key {header.signing_key_id}/{header.signing_key_version}, "
            f"not {signing_key.key_id}/{signing_key.version}"
        )
    payload = header.SerializeToString(deterministic=True)
    return batch_pb2.SignedBatchHeader(
        header=payload,
        signature=signing_key.sign(DOMAIN_BATCH_HEADER, payload),
        key_id=signing_key.key_id,
        key_version=signing_key.version,
    )


# --- Verifying -----------------------------------------------------------------------------------------------


def open_header(signed: batch_pb2.SignedBatchHeader, trusted: TrustedKeys) -> batch_pb2.BatchHeader:
    """The header, once its signature verifies with a pinned key: verify the bytes, then parse them."""
    try:
        trusted.verify(DOMAIN_BATCH_HEADER, signed.header, signed.signature, signed.key_id)
    except SignatureError as exc:
        raise BatchRejected(f"batch header refused: {exc}") from None
    try:
        header = batch_pb2.BatchHeader.FromString(signed.header)
    except DecodeError:
        raise BatchRejected("batch header refused: its signed bytes are not a BatchHeader") from None
    if (header.signing_key_id, header.signing_key_version) != (signed.key_id, signed.key_version):
        raise BatchRejected(
            f"batch header refused: signed as key {header.signing_key_id}/{header.signing_key_version} "
            f"but presented as {signed.key_id}/{signed.key_version}"
        )
    if len(header.salt) != SALT_BYTES:
        raise BatchRejected(f"batch {header.sequence} refused: its salt is {len(header.salt)} bytes, not {SALT_BYTES}")
    if header.filters and header.first_interval > header.last_interval:
        raise BatchRejected(f"batch {header.sequence} refused: its interval range is empty")
    return header


def open_body(header: batch_pb2.BatchHeader, body: bytes) -> list[LoadedFilter]:
    """The filters of a verified header's body, each checked against its FilterInfo before it is loaded."""
    problem = _body_problem(header, body)
    if problem:
        raise BatchRejected(f"batch {header.sequence} refused: {problem}")
    return [
        LoadedFilter(info, load_filter(body[info.offset : info.offset + info.length])) for info in header.filters
    ]


def _body_problem(header: batch_pb2.BatchHeader, body: bytes) -> str | None:
    if len(body) != header.body_size:
        return f"the body is {len(body)} bytes, the header says {header.body_size}"
    offset = 0
    classes: set[RiskClass] = set()
    for index, info in enumerate(header.filters):
        problem = _filter_problem(info, body, offset, classes)
        if problem:
            return f"filter {index}: {problem}"
        classes.add(risk_class_of_info(info))
        offset += info.length
    if offset != len(body):
        return f"the filters cover {offset} bytes of a {len(body)}-byte body"
    return None


def _filter_problem(info: batch_pb2.FilterInfo, body: bytes, offset: int, classes: set[RiskClass]) -> str | None:
    risk_class = (info.report_type, info.infectiousness, info.tx_power_dbm if info.HasField("tx_power_dbm") else None)
    if risk_class not in _PUBLISHED:
        return f"(report type, infectiousness, TX power) {risk_class} is not a published risk class"
    if risk_class in classes:
        return "a second filter for the same risk class"
    if info.offset != offset or info.offset + info.length > len(body):
        return f"bytes {info.offset}..{info.offset + info.length} are not the next ones of the body"
    image = body[info.offset : info.offset + info.length]
    if hashlib.sha256(image).digest() != info.sha256:
        return "SHA-256 of its bytes differs from the header's"
    try:
        params, count = read_image_header(image)
    except ValueError as exc:
        return str(exc)
    announced = FilterParams(info.capacity, info.error_rate, info.num_slices, info.bits_per_slice)
    if params != announced or count != info.count:
        return (
            f"its tofile header ({params}, count {count}) disagrees with the batch header "
            f"({announced}, count {info.count})"
        )
    return None


def open_batch(
    signed: batch_pb2.SignedBatchHeader, body: bytes, trusted: TrustedKeys
) -> tuple[batch_pb2.BatchHeader, list[LoadedFilter]]:
    """open_header then open_body: a batch that can be matched against, or BatchRejected."""
    header = open_header(signed, trusted)
    return header, open_body(header, body)


# --- Matching ------------------------------------------------------------------------------------------------


def eligible(
    header: batch_pb2.BatchHeader,
    intervals: np.ndarray,
    observed_at: np.ndarray | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> np.ndarray:
    """Which observations are tested against this batch (docs/spec.md, "Matching"): ``(n,)`` bool.

    An observation is tested only when it was made before the batch was published, and when its interval lies
    in the batch's covered range widened by the tolerance (so that at least one tested interval is inside it).
    """
    intervals = np.asarray(intervals, dtype=np.int64)
    if not header.filters:
        return np.zeros(intervals.shape, dtype=bool)
    mask = (intervals >= header.first_interval - tolerance) & (intervals <= header.last_interval + tolerance)
    if observed_at is not None:
        mask &= np.asarray(observed_at, dtype=np.int64) < header.published_at
    return mask


def match(
    header: batch_pb2.BatchHeader,
    filters: list[LoadedFilter],
    rpis: np.ndarray,
    intervals: np.ndarray,
    observed_at: np.ndarray | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> np.ndarray:
    """For each observation ``(rpis[n], intervals[n])``: the index in ``header.filters`` of the first filter that
    contains it at one of its tested intervals, or -1. ``(n,)`` int64.

    An eligible observation made at interval ``o`` is tested at every ``i`` in ``o - tolerance .. o + tolerance``
    with ``first_interval <= i <= last_interval``. ``header`` and ``filters`` must come from open_header and
    open_body (verified); ``observed_at`` (unix seconds) may be left out by a caller that has already dropped
    observations made after ``header.published_at``.
    """
    if tolerance < 0:
        raise ValueError(f"the tolerance must be at least 0, got {tolerance}")
    if len(filters) != len(header.filters):
        raise ValueError(f"the header lists {len(header.filters)} filters, {len(filters)} were given (use open_body)")
    rpis = np.asarray(rpis, dtype=np.uint8).reshape(-1, 16)
    intervals = np.asarray(intervals, dtype=np.int64)
    if intervals.shape != (len(rpis),):
        raise ValueError(f"need one interval per RPI: {len(rpis)} RPIs, intervals of shape {intervals.shape}")
    result = np.full(len(rpis), -1, dtype=np.int64)
    tested = np.flatnonzero(eligible(header, intervals, observed_at, tolerance))
    if not len(tested) or not filters:
        return result
    encrypted = encrypt_rpis(rpis[tested], header.salt)  # the interval-free half of the tag, once per RPI
    # Every (observation, tested interval) pair in one array, so that each filter is queried once.
    offsets = np.arange(-tolerance, tolerance + 1)
    candidate = (intervals[tested][:, None] + offsets).ravel()
    inside = np.flatnonzero((candidate >= header.first_interval) & (candidate <= header.last_interval))
    rows = inside // len(offsets)  # index into ``tested``
    tags = tags_from_encrypted(encrypted[rows], candidate[inside], header.salt)
    for index, loaded in enumerate(filters):
        hit = tested[rows[contains(loaded.bloom, tags)]]
        result[hit[result[hit] == -1]] = index
    return result


# --- Files and inspection ------------------------------------------------------------------------------------


def write_batch_file(path: str | os.PathLike[str], signed: batch_pb2.SignedBatchHeader, body: bytes) -> None:
    """A batch as one file: magic, uint32_le header length, SignedBatchHeader bytes, body (written atomically)."""
    envelope = signed.SerializeToString(deterministic=True)
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as out:
        out.write(BATCH_FILE_MAGIC + _LENGTH.pack(len(envelope)) + envelope)
        out.write(body)
    os.replace(partial, path)


def read_batch_file(path: str | os.PathLike[str]) -> tuple[batch_pb2.SignedBatchHeader, bytes]:
    """The signed header and the body of a batch file (nothing verified yet); BatchRejected if it is malformed."""
    data = Path(path).read_bytes()
    prefix = len(BATCH_FILE_MAGIC) + _LENGTH.size
    if len(data) < prefix or not data.startswith(BATCH_FILE_MAGIC):
        raise BatchRejected(f"{path}: not a batch file (it does not start with {BATCH_FILE_MAGIC.decode()!r})")
    (length,) = _LENGTH.unpack_from(data, len(BATCH_FILE_MAGIC))
    if prefix + length > len(data):
        raise BatchRejected(f"{path}: truncated: the signed header needs {length} bytes, {len(data) - prefix} remain")
    try:
        signed = batch_pb2.SignedBatchHeader.FromString(data[prefix : prefix + length])
    except DecodeError:
        raise BatchRejected(f"{path}: the signed header does not parse") from None
    return signed, data[prefix + length :]


def describe(signed: batch_pb2.SignedBatchHeader, body: bytes, trusted: TrustedKeys) -> dict[str, Any]:
    """What ``matcher inspect`` prints: the header's fields, each filter's parameters and digest check, and
    whether the signature verifies. A header whose signature fails is still shown, marked unverified."""
    report: dict[str, Any] = {"key_id": signed.key_id, "key_version": signed.key_version}
    try:
        header = open_header(signed, trusted)
        report.update(signature_ok=True, signature_error=None)
    except BatchRejected as exc:
        report.update(signature_ok=False, signature_error=str(exc))
        try:
            header = batch_pb2.BatchHeader.FromString(signed.header)
        except DecodeError:
            report.update(ok=False, header=None, body_ok=False, body_error="the header does not parse")
            return report
    body_error = _body_problem(header, body)
    report["header"] = {
        "sequence": header.sequence,
        "published_at": header.published_at,
        "published_at_utc": dt.datetime.fromtimestamp(header.published_at, dt.UTC).isoformat(),
        "first_interval": header.first_interval,
        "last_interval": header.last_interval,
        "salt": header.salt.hex(),
        "region": header.region,
        "body_size": header.body_size,
        "signing_key_id": header.signing_key_id,
        "signing_key_version": header.signing_key_version,
        "filters": [_describe_filter(info, body) for info in header.filters],
    }
    report.update(body_ok=body_error is None, body_error=body_error)
    report["ok"] = report["signature_ok"] and report["body_ok"]
    return report


def _describe_filter(info: batch_pb2.FilterInfo, body: bytes) -> dict[str, Any]:
    image = body[info.offset : info.offset + info.length]
    return {
        "report_type": _name(ReportType, info.report_type),
        "infectiousness": _name(Infectiousness, info.infectiousness),
        "tx_power_dbm": info.tx_power_dbm if info.HasField("tx_power_dbm") else None,
        "offset": info.offset,
        "length": info.length,
        "capacity": info.capacity,
        "count": info.count,
        "error_rate": info.error_rate,
        "num_slices": info.num_slices,
        "bits_per_slice": info.bits_per_slice,
        "bits_per_element": round(info.num_slices * info.bits_per_slice / info.count, 3) if info.count else None,
        "sha256": info.sha256.hex(),
        "digest_ok": len(image) == info.length and hashlib.sha256(image).digest() == info.sha256,
    }


def _name(enum: type[ReportType] | type[Infectiousness], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)
