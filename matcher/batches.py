"""Batches: diagnosis keys in, signed header and body out; and, for phones, verify-then-match.

A batch (format 2) is one Golomb-Rice coded set of element hashes per section, all under one fresh 16-byte salt
and one hash range, and a header that says where each section sits in the body, how it is coded and which risk
classes it covers. The header travels as a SignedBatchHeader: the exact serialised BatchHeader bytes and an ECDSA
P-256 signature over ``DOMAIN_BATCH_HEADER || those bytes``. Verifiers check the signature over the bytes, then
parse them; nothing is ever re-serialised. docs/spec.md is the normative description; this module implements it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from google.protobuf.message import DecodeError
from numpy.typing import NDArray

from exposure.v1 import batch_pb2, config_pb2

from . import crypto
from .envelope import BATCH_HEADER, Rejected, open_envelope, seal
from .exposure_config import infectiousness_of, infectiousness_weight, report_type_weight
from .filters import (
    SALT_BYTES,
    EncodedSet,
    contains,
    decode_set,
    element_hashes,
    element_tags,
    encode_set,
    encrypt_rpis,
    hash_range_for,
    tags_from_encrypted,
)
from .fprate import section_error_rate
from .intervals import CLOCK_SKEW_SECONDS, INTERVAL_SECONDS
from .model import PUBLISHABLE_REPORT_TYPES, DiagnosisKey, Infectiousness, ReportType, VenueHour, level_of
from .signing import SigningKey, TrustedKeys
from .venues import HOUR_SECONDS

FORMAT_VERSION = 2
PUBLISHED_INFECTIOUSNESS = (Infectiousness.STANDARD, Infectiousness.HIGH)

# The batch file (`matcher inspect FILE`): magic, uint32_le length of the SignedBatchHeader, its bytes, the body.
BATCH_FILE_MAGIC = b"EXPOSURE BATCH 2"
_LENGTH = struct.Struct("<I")

# Keys are turned into tags a group at a time, so that RPIs and intermediate blocks stay a few MiB.
_ELEMENTS_PER_GROUP = 1 << 18


class BatchRejected(Rejected):
    """A batch that must not be used; the message says why, for a person."""


@dataclass(frozen=True, order=True)
class SectionClass:
    """The risk classes one section covers: every (report type, infectiousness) pair of the two tuples."""

    report_types: tuple[ReportType, ...]
    infectiousness: tuple[Infectiousness, ...]

    def pairs(self) -> set[tuple[int, int]]:
        return {(r, i) for r in self.report_types for i in self.infectiousness}


@dataclass(frozen=True)
class BuiltBatch:
    """A batch as the publisher cuts it: the header to sign, the body, and what went into it."""

    header: batch_pb2.BatchHeader
    body: bytes
    keys_published: int
    elements: int


@dataclass(frozen=True)
class LoadedSection:
    """One verified section of a batch: its entry in the header and its sorted hashes."""

    info: batch_pb2.Section
    values: NDArray[np.uint64]  # (count,), strictly increasing

    @property
    def section_class(self) -> SectionClass:
        return section_class_of_info(self.info)


def section_class_of_info(info: batch_pb2.Section) -> SectionClass:
    return SectionClass(tuple(map(ReportType, info.report_types)), tuple(map(Infectiousness, info.infectiousness)))


# --- Building ------------------------------------------------------------------------------------------------


def _alike(values: Iterable[Any], weight: Callable[[Any], Any]) -> dict[Any, tuple[Any, ...]]:
    """Each value -> the sorted group of values with the same weight."""
    groups: dict[Any, list[Any]] = {}
    for value in sorted(values):
        groups.setdefault(weight(value), []).append(value)
    return {value: tuple(group) for group in groups.values() for value in group}


def section_classes(config: config_pb2.ExposureConfig) -> dict[tuple[ReportType, Infectiousness], SectionClass]:
    """The section of each published (report type, infectiousness) under this configuration.

    A section covers the report types the configuration weighs alike and the infectiousness levels it weighs
    alike: a distinction the phone's score cannot see would cost bits and split the cases of a batch into
    smaller anonymity sets for nothing (docs/spec.md, "Sections"). Cases' keys and their contacts' (RECURSIVE)
    never share a section, whatever the weights: the phone tells an F1 exposure from an F2 one by the section.
    """
    report_types = _alike(PUBLISHABLE_REPORT_TYPES, lambda r: (level_of(r), report_type_weight(config, r)))
    levels = _alike(PUBLISHED_INFECTIOUSNESS, lambda i: infectiousness_weight(config, i))
    return {(r, i): SectionClass(report_types[r], levels[i]) for r in report_types for i in levels}


def section_of(
    key: DiagnosisKey,
    config: config_pb2.ExposureConfig,
    classes: dict[tuple[ReportType, Infectiousness], SectionClass] | None = None,
) -> SectionClass | None:
    """The section a key is published in (``classes`` from section_classes(config), computed when not given),
    or None when it is not published at all."""
    if key.report_type not in PUBLISHABLE_REPORT_TYPES or key.rolling_period < 1:
        return None
    infectiousness = infectiousness_of(config, key.days_since_onset)
    if infectiousness == Infectiousness.NONE:
        return None
    return (classes or section_classes(config))[ReportType(key.report_type), infectiousness]


def key_elements(keys: Sequence[DiagnosisKey]) -> tuple[np.ndarray, np.ndarray]:
    """The RPI and interval of every published interval of every key, keys in order: ``(n, 16)`` and ``(n,)``.
    A key publishes every interval of its validity, or those its contact-interval bitmap marks.

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
    source, target = blocks.data.cast("B"), out.data  # the arrays' memoryviews: slicing them is cheaper than arrays
    for key, first, end in zip(keys, (firsts * 16).tolist(), (ends * 16).tolist()):
        encryptor = Cipher(algorithms.AES(crypto.rpik(key.key_data)), modes.ECB()).encryptor()
        encryptor.update_into(source[first:end], target[first : end + 15])
    rpis = out[: total * 16].reshape(-1, 16)
    if any(key.contact_intervals is not None for key in keys):
        published = np.concatenate([_published_mask(key) for key in keys])
        rpis, intervals = rpis[published], intervals[published]
    return rpis, intervals


def _published_mask(key: DiagnosisKey) -> NDArray[np.bool_]:
    """Which intervals of a key's validity it publishes: ``(rolling_period,)`` bool."""
    if key.contact_intervals is None:
        return np.ones(key.rolling_period, dtype=bool)
    bits = np.unpackbits(np.frombuffer(key.contact_intervals, dtype=np.uint8), bitorder="little")
    return bits[: key.rolling_period].astype(bool)


def key_hashes(keys: Sequence[DiagnosisKey], salt: bytes, hash_range: int) -> np.ndarray:
    """The element hashes of every element of these keys, ``(n,)`` uint64: two salt-keyed AES calls per group of
    keys, so that RPIs and tags stay a few MiB whatever the number of keys."""
    periods = [key.elements for key in keys]
    hashes = np.empty(sum(periods), dtype=np.uint64)
    done = begin = 0
    while begin < len(keys):
        end, size = begin, 0
        while end < len(keys) and (size == 0 or size + periods[end] <= _ELEMENTS_PER_GROUP):
            size += periods[end]
            end += 1
        rpis, intervals = key_elements(keys[begin:end])
        hashes[done : done + size] = element_hashes(element_tags(rpis, intervals, salt), hash_range)
        done += size
        begin = end
    return hashes


def publishable_sections(
    keys: Sequence[DiagnosisKey], config: config_pb2.ExposureConfig
) -> dict[SectionClass, list[DiagnosisKey]]:
    """The keys each section publishes, in their order: keys that are not published (report type, infectiousness
    NONE, or no interval left after contact-interval pruning) are left out, and a key given twice (same key data
    and rolling start) counts once."""
    by_section: dict[SectionClass, list[DiagnosisKey]] = {}
    seen: set[bytes] = set()
    classes = section_classes(config)
    for key in keys:
        section = section_of(key, config, classes)
        fingerprint = key.fingerprint()
        if section is None or fingerprint in seen or not key.elements:
            continue
        seen.add(fingerprint)
        by_section.setdefault(section, []).append(key)
    return by_section


def elements_of(keys: Sequence[DiagnosisKey]) -> int:
    """The elements these keys publish: one per published interval of each key."""
    return sum(key.elements for key in keys)


def build_batch(
    keys: Sequence[DiagnosisKey],
    *,
    sequence: int,
    published_at: int,
    region: str,
    config: config_pb2.ExposureConfig,
    signing_key: SigningKey,
    error_rate: float,
    run_elements: int | None = None,
    salt: bytes | None = None,
    venue_hours: Sequence[VenueHour] = (),
    venue_error_rate: float | None = None,
) -> BuiltBatch:
    """The batch of these keys, and of these venue hours: one coded set per section with elements, each in its own
    hash range. The venue hours, if any, go into one venue section after the others, sized for
    ``venue_error_rate`` (fprate.venue_error_rate: a single venue match can alert).

    ``error_rate`` is the publishing run's eps and ``run_elements`` the elements of every section the run cuts
    (this batch's own when it is the run's only batch): a section of n elements gets
    ``section_error_rate(error_rate, n, run_elements)`` and the hash range ``n x ceil(1 / that)``. A key's
    elements are ``(RPI_i, i)`` for every interval ``i`` of its validity (publishable_sections says which keys
    count). With no element at all, the header has no sections and the body is empty. The header still has to
    be signed (sign_header).
    """
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a batch salt is {SALT_BYTES} bytes, got {len(salt)}")
    by_section = publishable_sections(keys, config)
    header = batch_pb2.BatchHeader(
        sequence=sequence,
        published_at=published_at,
        salt=salt,
        signing_key_id=signing_key.key_id,
        signing_key_version=signing_key.version,
        region=region,
        format_version=FORMAT_VERSION,
    )
    published = [key for section_keys in by_section.values() for key in section_keys]
    elements = elements_of(published)
    if published:
        header.first_interval = min(key.rolling_start for key in published)
        header.last_interval = max(key.end_interval for key in published) - 1
    parts: list[bytes] = []
    offset = 0
    for section in sorted(by_section):
        section_keys = by_section[section]
        rate = section_error_rate(error_rate, elements_of(section_keys), run_elements or elements)
        hash_range = hash_range_for(elements_of(section_keys), rate)
        encoded = encode_set(key_hashes(section_keys, salt, hash_range))
        header.sections.append(
            _section(
                encoded, offset, hash_range, report_types=section.report_types, infectiousness=section.infectiousness
            )
        )
        parts.append(encoded.data)
        offset += len(encoded.data)
    venue_elements = _venue_elements(venue_hours)
    if venue_elements is not None:
        identifiers, hours = venue_elements
        if venue_error_rate is None:
            raise ValueError("venue hours need a venue error rate (fprate.venue_error_rate)")
        hash_range = hash_range_for(len(hours), venue_error_rate)
        encoded = encode_set(element_hashes(element_tags(identifiers, hours, salt), hash_range))
        header.sections.append(_section(encoded, offset, hash_range, kind=batch_pb2.SECTION_KIND_VENUE))
        parts.append(encoded.data)
        offset += len(encoded.data)
    body = b"".join(parts)
    header.body_size = len(body)
    header.body_sha256 = hashlib.sha256(body).digest()
    return BuiltBatch(header=header, body=body, keys_published=len(published), elements=elements)


def _section(encoded: EncodedSet, offset: int, hash_range: int, **what: Any) -> batch_pb2.Section:
    """The header's entry for one coded set at ``offset`` of the body; ``what`` says whose elements it holds."""
    return batch_pb2.Section(
        offset=offset,
        length=len(encoded.data),
        count=encoded.count,
        rice_parameter=encoded.rice_parameter,
        quotient_bytes=encoded.quotient_bytes,
        hash_range=hash_range,
        **what,
    )


def _venue_elements(venue_hours: Sequence[VenueHour]) -> tuple[np.ndarray, np.ndarray] | None:
    """The distinct venue hours as elements: identifiers ``(n, 16)`` and hours ``(n,)``; None without any."""
    distinct = {(hour.identifier, hour.hour) for hour in venue_hours}
    if not distinct:
        return None
    ordered = sorted(distinct)
    identifiers = np.frombuffer(b"".join(identifier for identifier, _ in ordered), dtype=np.uint8).reshape(-1, 16)
    return identifiers, np.array([hour for _, hour in ordered], dtype=np.int64)


def budget_error_rate(header: batch_pb2.BatchHeader) -> float:
    """``sqrt(sum(eps_s^2))`` over a batch's proximity sections (``eps_s = count / hash_range``): its part of the
    alarm rule's budget (docs/spec.md, "False positives"); the run's eps for a run of one batch. 0 without any.
    Venue sections have a budget of their own."""
    return math.sqrt(sum((info.count / info.hash_range) ** 2 for info in proximity_sections(header)))


def proximity_sections(header: batch_pb2.BatchHeader) -> list[batch_pb2.Section]:
    return [info for info in header.sections if info.kind == batch_pb2.SECTION_KIND_PROXIMITY]


def sign_header(header: batch_pb2.BatchHeader, signing_key: SigningKey) -> batch_pb2.SignedBatchHeader:
    """The envelope phones receive: the header's bytes, serialised once, and the signature over them."""
    if (header.signing_key_id, header.signing_key_version) != (signing_key.key_id, signing_key.version):
        raise ValueError(
            f"the header names signing key {header.signing_key_id}/{header.signing_key_version}, "
            f"not {signing_key.key_id}/{signing_key.version}"
        )
    return seal(BATCH_HEADER, header, signing_key)


# --- Verifying -----------------------------------------------------------------------------------------------


def open_header(signed: batch_pb2.SignedBatchHeader, trusted: TrustedKeys) -> batch_pb2.BatchHeader:
    """The header, once its signature verifies with a pinned key (matcher/envelope.py) and it is one this phone
    reads."""
    header = open_envelope(BATCH_HEADER, signed, trusted, error=BatchRejected)
    problem = _header_problem(header)
    if problem:
        raise BatchRejected(f"batch {header.sequence} refused: {problem}")
    return header


def _header_problem(header: batch_pb2.BatchHeader) -> str | None:
    if header.format_version != FORMAT_VERSION:
        return f"it is in publication format {header.format_version}; this phone reads format {FORMAT_VERSION}"
    if len(header.salt) != SALT_BYTES:
        return f"its salt is {len(header.salt)} bytes, not {SALT_BYTES}"
    if header.sections and header.first_interval > header.last_interval:
        return "its interval range is empty"
    if len(header.body_sha256) != hashlib.sha256().digest_size:
        return "its body digest is not a SHA-256"
    return None


def open_body(header: batch_pb2.BatchHeader, body: bytes) -> list[LoadedSection]:
    """The sections of a verified header's body, each decoded and checked against its header entry."""
    sections: list[LoadedSection] = []
    problem = _body_problem(header, body, sections)
    if problem:
        raise BatchRejected(f"batch {header.sequence} refused: {problem}")
    return sections


def _body_problem(header: batch_pb2.BatchHeader, body: bytes, out: list[LoadedSection] | None = None) -> str | None:
    """What is wrong with a body under this header, or None; decoded sections are appended to ``out``."""
    if len(body) != header.body_size:
        return f"the body is {len(body)} bytes, the header says {header.body_size}"
    if hashlib.sha256(body).digest() != header.body_sha256:
        return "SHA-256 of the body differs from the header's"
    offset = 0
    covered: set[tuple[int, int]] = set()
    for index, info in enumerate(header.sections):
        last = index == len(header.sections) - 1
        problem = _venue_section_problem(info, last) if info.kind else _section_problem(info, covered)
        if problem is None and info.offset != offset:
            problem = f"it starts at byte {info.offset}, not at {offset} where the previous one ended"
        if problem is None:
            try:
                values = decode_set(
                    body[info.offset : info.offset + info.length],
                    info.count,
                    info.rice_parameter,
                    info.quotient_bytes,
                    info.hash_range,
                )
            except ValueError as exc:
                problem = str(exc)
        if problem:
            return f"section {index}: {problem}"
        if out is not None:
            out.append(LoadedSection(info, values))
        if info.kind == batch_pb2.SECTION_KIND_PROXIMITY:
            covered |= section_class_of_info(info).pairs()
        offset += info.length
    if offset != len(body):
        return f"the sections cover {offset} bytes of a {len(body)}-byte body"
    return None


def _venue_section_problem(info: batch_pb2.Section, last: bool) -> str | None:
    if info.kind != batch_pb2.SECTION_KIND_VENUE:
        return f"its kind {info.kind} is neither proximity nor venue"
    if info.report_types or info.infectiousness:
        return "a venue section has no report types and no infectiousness"
    if not last:
        return "a venue section comes last, and a batch has one at most"
    return None


def _section_problem(info: batch_pb2.Section, covered: set[tuple[int, int]]) -> str | None:
    report_types, levels = list(info.report_types), list(info.infectiousness)
    if (
        not report_types
        or not set(report_types) <= set(PUBLISHABLE_REPORT_TYPES)
        or len(set(report_types)) < len(report_types)
    ):
        return f"report types {report_types} are not distinct published report types"
    if not levels or not set(levels) <= set(PUBLISHED_INFECTIOUSNESS) or len(set(levels)) < len(levels):
        return f"infectiousness levels {levels} are not distinct published levels"
    if len({level_of(r) for r in report_types}) > 1:
        return "it mixes cases' report types with RECURSIVE: a phone could not tell an F1 match from an F2 one"
    pairs = {(r, i) for r in report_types for i in levels}
    if pairs & covered:
        return "it covers a risk class that an earlier section covers"
    return None


def open_batch(
    signed: batch_pb2.SignedBatchHeader, body: bytes, trusted: TrustedKeys
) -> tuple[batch_pb2.BatchHeader, list[LoadedSection]]:
    """open_header then open_body: a batch that can be matched against, or BatchRejected."""
    header = open_header(signed, trusted)
    return header, open_body(header, body)


# --- Matching ------------------------------------------------------------------------------------------------


def tested_intervals(observed_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and last interval an observation made at ``observed_at`` (unix seconds) is tested at: those
    that overlap ``[observed_at - CLOCK_SKEW_SECONDS, observed_at + CLOCK_SKEW_SECONDS]``."""
    observed_at = np.asarray(observed_at, dtype=np.int64)
    return (
        np.floor_divide(observed_at - CLOCK_SKEW_SECONDS, INTERVAL_SECONDS),
        np.floor_divide(observed_at + CLOCK_SKEW_SECONDS, INTERVAL_SECONDS),
    )


def eligible(header: batch_pb2.BatchHeader, observed_at: np.ndarray) -> np.ndarray:
    """Which observations are tested against this batch (docs/spec.md, "Matching"): ``(n,)`` bool.

    An observation is tested only when it was made before the batch was published, and when one of its tested
    intervals lies in the batch's covered range.
    """
    observed_at = np.asarray(observed_at, dtype=np.int64)
    if not proximity_sections(header):
        return np.zeros(observed_at.shape, dtype=bool)
    first, last = tested_intervals(observed_at)
    return (observed_at < header.published_at) & (last >= header.first_interval) & (first <= header.last_interval)


@dataclass(frozen=True)
class Matches:
    """For each observation: the index of the section it matched (-1 for none) and the interval it matched at."""

    section: NDArray[np.int64]  # (n,)
    interval: NDArray[np.int64]  # (n,), meaningful where section >= 0


def match(
    header: batch_pb2.BatchHeader, sections: list[LoadedSection], rpis: np.ndarray, observed_at: np.ndarray
) -> Matches:
    """Tests each observation ``(rpis[n], observed_at[n])`` against a verified batch (docs/spec.md, "Matching").

    An eligible observation is tested at each of its tested intervals inside ``[first_interval, last_interval]``;
    it matches at the first ``(section, interval)`` (in header order, then interval order) whose hash the
    section holds. ``header`` and ``sections`` must come from open_header and open_body.
    """
    if len(sections) != len(header.sections):
        raise ValueError(
            f"the header lists {len(header.sections)} sections, {len(sections)} were given (use open_body)"
        )
    rpis = np.asarray(rpis, dtype=np.uint8).reshape(-1, 16)
    observed_at = np.asarray(observed_at, dtype=np.int64)
    if observed_at.shape != (len(rpis),):
        raise ValueError(f"need one time per RPI: {len(rpis)} RPIs, times of shape {observed_at.shape}")
    found = Matches(np.full(len(rpis), -1, dtype=np.int64), np.zeros(len(rpis), dtype=np.int64))
    tested = np.flatnonzero(eligible(header, observed_at))
    if not len(tested):
        return found
    first, last = tested_intervals(observed_at[tested])
    first = np.maximum(first, header.first_interval)
    last = np.minimum(last, header.last_interval)
    # Every (observation, tested interval) pair in one array, so that each section is searched once: every
    # observation at its first tested interval, then those tested at a second one (within the skew of the next
    # interval) at that, and so on. An observation's earlier intervals come first, which the first-hit rule below
    # relies on. Whole arrays rather than a row gather per pair: a phone's day is 10^5 pairs per batch.
    encrypted = encrypt_rpis(rpis[tested], header.salt)  # the interval-free half of the tag, once per RPI
    counts = last - first + 1
    row_runs, interval_runs, blocks = [np.arange(len(tested))], [first], [encrypted]
    for k in range(1, int(counts.max())):
        more = np.flatnonzero(counts > k)
        row_runs.append(more)
        interval_runs.append(first[more] + k)
        blocks.append(encrypted[more])
    rows, intervals = np.concatenate(row_runs), np.concatenate(interval_runs)
    tags = tags_from_encrypted(np.concatenate(blocks), intervals, header.salt)
    for index, section in enumerate(sections):
        if section.info.kind != batch_pb2.SECTION_KIND_PROXIMITY:
            continue
        hit = np.flatnonzero(contains(section.values, element_hashes(tags, section.info.hash_range)))
        observation = tested[rows[hit]]
        new = found.section[observation] == -1
        # within one section, np.flatnonzero keeps interval order, so the first hit of an observation wins
        observation, hit = observation[new], hit[new]
        observation, first_hit = np.unique(observation, return_index=True)
        found.section[observation] = index
        found.interval[observation] = intervals[hit[first_hit]]
    return found


def match_venue_hours(
    header: batch_pb2.BatchHeader, sections: list[LoadedSection], identifiers: np.ndarray, hours: np.ndarray
) -> np.ndarray:
    """Which ``(VID_h, h)`` (hourly venue identifiers of a phone's check-ins, matcher/venues.py) the batch's
    venue section holds: ``(n,)`` bool. An hour is tested only when it began before the batch was published
    (docs/spec.md, "Venues")."""
    identifiers = np.asarray(identifiers, dtype=np.uint8).reshape(-1, 16)
    hours = np.asarray(hours, dtype=np.int64)
    found = np.zeros(len(hours), dtype=bool)
    venue = [s for s in sections if s.info.kind == batch_pb2.SECTION_KIND_VENUE]
    tested = np.flatnonzero(hours * HOUR_SECONDS < header.published_at)
    if not venue or not len(tested):
        return found
    hashes = element_hashes(element_tags(identifiers[tested], hours[tested], header.salt), venue[0].info.hash_range)
    found[tested] = contains(venue[0].values, hashes)
    return found


# --- Files and inspection ------------------------------------------------------------------------------------


def write_batch_file(path: str | os.PathLike[str], signed: batch_pb2.SignedBatchHeader, body: bytes) -> None:
    """A batch as one file: magic, uint32_le header length, SignedBatchHeader bytes, body (written atomically)."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(batch_file_bytes(signed, body))
    os.replace(partial, path)


def read_batch_file(path: str | os.PathLike[str]) -> tuple[batch_pb2.SignedBatchHeader, bytes]:
    """The signed header and the body of a batch file (nothing verified yet); BatchRejected if it is malformed."""
    return parse_batch_file(Path(path).read_bytes(), str(path))


def batch_file_bytes(signed: batch_pb2.SignedBatchHeader, body: bytes) -> bytes:
    """A batch file's bytes (docs/spec.md, "Batch file")."""
    envelope = signed.SerializeToString(deterministic=True)
    return BATCH_FILE_MAGIC + _LENGTH.pack(len(envelope)) + envelope + body


def parse_batch_file(data: bytes, path: str = "batch file") -> tuple[batch_pb2.SignedBatchHeader, bytes]:
    """The signed header and the body in a batch file's bytes (nothing verified yet); BatchRejected if malformed."""
    prefix = len(BATCH_FILE_MAGIC) + _LENGTH.size
    if len(data) < prefix or not data.startswith(BATCH_FILE_MAGIC):
        raise BatchRejected(
            f"{path}: not a batch file of format {FORMAT_VERSION} (it does not start with "
            f"{BATCH_FILE_MAGIC.decode()!r})"
        )
    (length,) = _LENGTH.unpack_from(data, len(BATCH_FILE_MAGIC))
    if prefix + length > len(data):
        raise BatchRejected(f"{path}: truncated: the signed header needs {length} bytes, {len(data) - prefix} remain")
    try:
        signed = batch_pb2.SignedBatchHeader.FromString(data[prefix : prefix + length])
    except DecodeError:
        raise BatchRejected(f"{path}: the signed header does not parse") from None
    return signed, data[prefix + length :]


def describe(signed: batch_pb2.SignedBatchHeader, body: bytes, trusted: TrustedKeys) -> dict[str, Any]:
    """What ``matcher inspect`` prints: the header's fields, each section's coding, the batch's false-positive
    rate and size per element, and whether the signature and the body verify. A header whose signature fails is
    still shown, marked unverified."""
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
    body_error = _header_problem(header) or _body_problem(header, body)
    count = sum(info.count for info in header.sections)
    rate = budget_error_rate(header)
    report["header"] = {
        "sequence": header.sequence,
        "format_version": header.format_version,
        "published_at": header.published_at,
        "published_at_utc": dt.datetime.fromtimestamp(header.published_at, dt.UTC).isoformat(),
        "first_interval": header.first_interval,
        "last_interval": header.last_interval,
        "salt": header.salt.hex(),
        "region": header.region,
        "error_rate": rate or None,
        "log2_inv_eps": round(math.log2(1 / rate), 3) if rate else None,
        "body_size": header.body_size,
        "body_sha256": header.body_sha256.hex(),
        "bits_per_element": round((len(signed.SerializeToString()) + header.body_size) * 8 / count, 3)
        if count
        else None,
        "signing_key_id": header.signing_key_id,
        "signing_key_version": header.signing_key_version,
        "sections": [_describe_section(info) for info in header.sections],
    }
    report.update(body_ok=body_error is None, body_error=body_error)
    report["ok"] = report["signature_ok"] and report["body_ok"]
    return report


def _describe_section(info: batch_pb2.Section) -> dict[str, Any]:
    return {
        "kind": "venue" if info.kind == batch_pb2.SECTION_KIND_VENUE else "proximity",
        "report_types": [_name(ReportType, value) for value in info.report_types],
        "infectiousness": [_name(Infectiousness, value) for value in info.infectiousness],
        "offset": info.offset,
        "length": info.length,
        "count": info.count,
        "hash_range": info.hash_range,
        "error_rate": info.count / info.hash_range if info.hash_range else None,
        "rice_parameter": info.rice_parameter,
        "quotient_bytes": info.quotient_bytes,
        "bits_per_element": round(info.length * 8 / info.count, 3) if info.count else None,
    }


def _name(enum: type[ReportType] | type[Infectiousness], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)
