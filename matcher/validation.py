"""The only place that turns requests into domain objects.

Each rule is a small check that adds a :class:`~matcher.errors.Violation` naming the field and the reason;
nothing stops at the first problem. Request-level problems (the id, the region, the number of keys) refuse the
whole request with one InvalidArgument listing every violation. Key-level problems refuse that key only
(partial success, as GAEN key servers do); when no key survives, the request is refused as a whole, so a
rejected request stores nothing. docs/validation.md lists every rule with its reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from exposure.v1 import authority_pb2, keys_pb2, sharing_pb2

from . import codes, venues
from .errors import InvalidArgument, Violation
from .intervals import SECONDS_PER_DAY, day_of, interval_number
from .model import (
    CONTACT_SHARE_DAYS,
    DEFAULT_PAGE_SIZE,
    KEY_LENGTH,
    MAX_DAYS_SINCE_ONSET,
    MAX_KEYS_PER_SUBMISSION,
    MAX_PAGE_SIZE,
    MAX_ROLLING_PERIOD,
    MAX_TX_POWER_DBM,
    MAX_VENUE_WARNING_HOURS,
    MIN_DAYS_SINCE_ONSET,
    MIN_ROLLING_PERIOD,
    MIN_TX_POWER_DBM,
    PUBLISHABLE_REPORT_TYPES,
    REGION_LENGTH,
    SUBMISSION_ID_ALPHABET,
    SUBMISSION_ID_MAX_LENGTH,
    DiagnosisKey,
    ExposureLevel,
    ReportType,
    Submission,
    VenueHour,
    retention_cutoff_interval,
)


@dataclass(frozen=True, slots=True)
class KeyVerdict:
    """The keys of a request split into the accepted (with their request index) and the refused."""

    accepted: tuple[tuple[int, DiagnosisKey], ...]
    rejected: tuple[tuple[int, Violation], ...]

    @property
    def keys(self) -> tuple[DiagnosisKey, ...]:
        return tuple(key for _, key in self.accepted)


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """What a one-time code says about its patient; it overrides whatever a phone puts in its keys. A RECURSIVE
    code (a case's contact) carries the day of the contact's exposure instead of a symptom onset."""

    report_type: ReportType
    symptom_onset: dt.date | None
    exposure_date: dt.date | None = None

    def contact_days_problem(self, rolling_start: int) -> str | None:
        """Why a contact's key may not be shared with this code, or None: only the CONTACT_SHARE_DAYS days from the
        exposure on (earlier days cannot have passed the exposure on)."""
        if self.exposure_date is None:
            return None
        offset = (day_of(rolling_start) - self.exposure_date).days
        if offset < 0:
            return f"is a day before the contact's exposure on {self.exposure_date}: a contact shares from that day on"
        if offset >= CONTACT_SHARE_DAYS:
            return f"is more than {CONTACT_SHARE_DAYS} days after the contact's exposure on {self.exposure_date}"
        return None

    def days_since_onset(self, rolling_start: int) -> int | None:
        if self.symptom_onset is None:
            return None
        days = (day_of(rolling_start) - self.symptom_onset).days
        # A key far from the onset still counts; it is clamped to the range GAEN defines, whose ends mean
        # "this many days or more".
        return max(MIN_DAYS_SINCE_ONSET, min(MAX_DAYS_SINCE_ONSET, days))


# --- request-level rules -----------------------------------------------------------------------------------


def check_submission_id(submission_id: str, field: str = "submission_id") -> list[Violation]:
    if not submission_id:
        return [Violation(field, "is required: choose an id that names this submission, to make retries safe")]
    if len(submission_id) > SUBMISSION_ID_MAX_LENGTH:
        return [Violation(field, f"is {len(submission_id)} characters; at most {SUBMISSION_ID_MAX_LENGTH}")]
    if not set(submission_id) <= SUBMISSION_ID_ALPHABET:
        return [Violation(field, "may contain only letters, digits and . _ : -")]
    return []


def check_region(region: str, field: str = "region") -> list[Violation]:
    if region and not (len(region) == REGION_LENGTH and region.isascii() and region.isupper() and region.isalpha()):
        return [Violation(field, f"{region!r} is not an ISO 3166-1 alpha-2 code such as 'VN'")]
    return []


def check_key_count(count: int, field: str = "keys") -> list[Violation]:
    if count == 0:
        return [Violation(field, "at least one key is required")]
    if count > MAX_KEYS_PER_SUBMISSION:
        return [Violation(field, f"{count} keys; at most {MAX_KEYS_PER_SUBMISSION} per submission")]
    return []


def parse_date(text: str, field: str) -> dt.date | None:
    """An ISO date "YYYY-MM-DD", or None for an empty string."""
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"{field} is not a date", [Violation(field, f"{text!r} is not a date in the form YYYY-MM-DD")]
        ) from None


# --- key-level rules ---------------------------------------------------------------------------------------


def check_key(
    key: keys_pb2.DiagnosisKey,
    field: str,
    *,
    now: int,
    retention_days: int,
    diagnosis: Diagnosis | None = None,
) -> list[Violation]:
    """Every problem with one key; an empty list means the key is valid. ``now`` is unix seconds."""
    problems: list[Violation] = []
    if len(key.key_data) != KEY_LENGTH:
        problems.append(Violation(f"{field}.key_data", f"must be {KEY_LENGTH} bytes, got {len(key.key_data)}"))

    period = key.rolling_period or MAX_ROLLING_PERIOD
    if not MIN_ROLLING_PERIOD <= period <= MAX_ROLLING_PERIOD:
        problems.append(
            Violation(
                f"{field}.rolling_period",
                f"must be {MIN_ROLLING_PERIOD}..{MAX_ROLLING_PERIOD} ten-minute intervals, got {period}",
            )
        )

    start = key.rolling_start_interval_number
    now_interval = interval_number(now)
    if start > now_interval:
        problems.append(
            Violation(
                f"{field}.rolling_start_interval_number",
                f"starts in the future (interval {start}, now is {now_interval})",
            )
        )
    elif start + period <= retention_cutoff_interval(now, retention_days):
        problems.append(
            Violation(
                f"{field}.rolling_start_interval_number",
                f"expired more than {retention_days} days ago; phones no longer hold observations it could match",
            )
        )

    problems.extend(_check_contact_intervals(key.contact_intervals, period, f"{field}.contact_intervals"))
    if key.HasField("tx_power_dbm") and not MIN_TX_POWER_DBM <= key.tx_power_dbm <= MAX_TX_POWER_DBM:
        problems.append(
            Violation(
                f"{field}.tx_power_dbm", f"must be {MIN_TX_POWER_DBM}..{MAX_TX_POWER_DBM} dBm, got {key.tx_power_dbm}"
            )
        )
    if diagnosis is not None:
        contact_problem = diagnosis.contact_days_problem(start)
        if contact_problem:
            problems.append(Violation(f"{field}.rolling_start_interval_number", contact_problem))
    else:
        problems.extend(_check_report_type(key.report_type, f"{field}.report_type"))
        if key.HasField("days_since_onset_of_symptoms"):
            days = key.days_since_onset_of_symptoms
            if not MIN_DAYS_SINCE_ONSET <= days <= MAX_DAYS_SINCE_ONSET:
                problems.append(
                    Violation(
                        f"{field}.days_since_onset_of_symptoms",
                        f"must be {MIN_DAYS_SINCE_ONSET}..{MAX_DAYS_SINCE_ONSET}, got {days}",
                    )
                )
    return problems


def _check_contact_intervals(bitmap: bytes, period: int, field: str) -> list[Violation]:
    """A contact-interval bitmap, when present, has exactly one bit per interval of the key's validity."""
    if not bitmap:
        return []
    size = -(-period // 8)
    if len(bitmap) != size:
        return [
            Violation(field, f"must be {size} bytes (one bit per interval of the key's {period}), got {len(bitmap)}")
        ]
    if int.from_bytes(bitmap, "little") >> period:
        return [Violation(field, f"has bits set past the key's {period} intervals")]
    return []


def _check_report_type(value: int, field: str) -> list[Violation]:
    if value == ReportType.UNSPECIFIED:
        return [Violation(field, f"is required: {REPORT_TYPE_NAMES}")]
    if value == ReportType.REVOKED:
        return [Violation(field, "REVOKED is not supported: a published batch cannot withdraw a key")]
    if value not in PUBLISHABLE_REPORT_TYPES:
        return [Violation(field, f"unknown report type {value}")]
    return []


def _duplicates(keys: Sequence[keys_pb2.DiagnosisKey], field: str) -> dict[int, Violation]:
    """Every occurrence of a key that appears more than once: none of them is trusted over the others."""
    where: dict[bytes, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        where[bytes(key.key_data)].append(index)
    found: dict[int, Violation] = {}
    for indices in where.values():
        if len(indices) > 1:
            listed = ", ".join(f"{field}[{i}]" for i in indices)
            for index in indices:
                found[index] = Violation(
                    f"{field}[{index}].key_data", f"the same key appears more than once ({listed})"
                )
    return found


def check_keys(
    keys: Sequence[keys_pb2.DiagnosisKey],
    *,
    now: int,
    retention_days: int,
    diagnosis: Diagnosis | None = None,
    contact_intervals: bool = False,
    field: str = "keys",
) -> KeyVerdict:
    """Splits keys into accepted domain keys and refused ones. With ``diagnosis`` (an upload with a one-time
    code), report type and days since onset come from it instead of from the keys. Contact-interval bitmaps are
    checked always, and kept only with ``contact_intervals`` (the authority prunes to them): otherwise the
    domain key has none, so that nothing of them is stored."""
    accepted: list[tuple[int, DiagnosisKey]] = []
    rejected: list[tuple[int, Violation]] = []
    duplicates = _duplicates(keys, field)
    for index, key in enumerate(keys):
        problems = check_key(key, f"{field}[{index}]", now=now, retention_days=retention_days, diagnosis=diagnosis)
        if index in duplicates:
            problems.append(duplicates[index])
        if problems:
            rejected.extend((index, problem) for problem in problems)
            continue
        accepted.append((index, _domain_key(key, diagnosis, contact_intervals)))
    return KeyVerdict(tuple(accepted), tuple(rejected))


def _domain_key(key: keys_pb2.DiagnosisKey, diagnosis: Diagnosis | None, contact_intervals: bool) -> DiagnosisKey:
    start = key.rolling_start_interval_number
    if diagnosis is not None:
        report_type, days = diagnosis.report_type, diagnosis.days_since_onset(start)
    else:
        report_type = ReportType(key.report_type)
        days = key.days_since_onset_of_symptoms if key.HasField("days_since_onset_of_symptoms") else None
    return DiagnosisKey(
        key_data=bytes(key.key_data),
        rolling_start=start,
        rolling_period=key.rolling_period or MAX_ROLLING_PERIOD,
        report_type=report_type,
        days_since_onset=days,
        contact_intervals=bytes(key.contact_intervals) if contact_intervals and key.contact_intervals else None,
    )


def require_some_accepted(verdict: KeyVerdict) -> None:
    """A request with no valid key stores nothing and fails as a whole, naming every problem."""
    if not verdict.accepted:
        raise InvalidArgument("no key in the request is valid", [v for _, v in verdict.rejected])


# --- whole requests ------------------------------------------------------------------------------------------


def submission_digest(region: str, keys: Sequence[keys_pb2.DiagnosisKey]) -> bytes:
    """SHA-256 of a canonical encoding of a request's content, independent of protobuf's serialiser.

    Layout: region (utf-8, length-prefixed), then per key: length-prefixed key_data, uint32 start, uint32 period
    (as sent), int32 report type (an open enum: any int32 arrives, negative ones too), a presence byte and int32
    days since onset, a presence byte and int32 TX power, and the length-prefixed contact-interval bitmap.
    """
    digest = hashlib.sha256()
    encoded_region = region.encode()
    digest.update(struct.pack("<H", len(encoded_region)) + encoded_region)
    for key in keys:
        has_days = key.HasField("days_since_onset_of_symptoms")
        has_tx = key.HasField("tx_power_dbm")
        digest.update(struct.pack("<H", len(key.key_data)) + bytes(key.key_data))
        digest.update(
            struct.pack(
                "<IIiBiBi",
                key.rolling_start_interval_number,
                key.rolling_period,
                key.report_type,
                has_days,
                key.days_since_onset_of_symptoms if has_days else 0,
                has_tx,
                key.tx_power_dbm if has_tx else 0,
            )
        )
        digest.update(struct.pack("<H", len(key.contact_intervals)) + bytes(key.contact_intervals))
    return digest.digest()


def submission_from_request(
    request: authority_pb2.SubmitKeysRequest,
    *,
    authority: str,
    default_region: str,
    now: int,
    retention_days: int,
    contact_intervals: bool = False,
) -> tuple[Submission, KeyVerdict]:
    """Validates an Authority.SubmitKeys request (``contact_intervals``: the authority prunes to them).

    Raises InvalidArgument when the request as a whole is wrong or no key is valid; otherwise returns the
    submission of the valid keys and the verdict with the refused ones.
    """
    problems = check_submission_id(request.submission_id) + check_region(request.region)
    problems += check_key_count(len(request.keys))
    if problems:
        raise InvalidArgument("the submission is malformed", problems)
    verdict = check_keys(request.keys, now=now, retention_days=retention_days, contact_intervals=contact_intervals)
    require_some_accepted(verdict)
    region = request.region or default_region
    submission = Submission(
        authority=authority,
        submission_id=request.submission_id,
        region=region,
        keys=verdict.keys,
        digest=submission_digest(region, request.keys),
    )
    return submission, verdict


REPORT_TYPE_NAMES = "CONFIRMED_TEST, CONFIRMED_CLINICAL_DIAGNOSIS, SELF_REPORT or RECURSIVE"


@dataclass(frozen=True, slots=True)
class CodeRequest:
    """A validated Authority.IssueCode request: the diagnosis the code will carry, and its lifetime."""

    diagnosis: Diagnosis
    ttl_seconds: int


def code_request_from(
    request: authority_pb2.IssueCodeRequest, *, now: int, retention_days: int, default_ttl: int
) -> CodeRequest:
    """Validates what a code will say about its patient; raises InvalidArgument listing every problem."""
    problems: list[Violation] = []
    if int(request.report_type) not in PUBLISHABLE_REPORT_TYPES:
        problems.append(Violation("report_type", f"must be {REPORT_TYPE_NAMES}"))
    onset = exposure = None
    try:
        onset = parse_date(request.symptom_onset_date, "symptom_onset_date")
    except InvalidArgument as exc:
        problems.extend(exc.violations)
    if int(request.report_type) == ReportType.RECURSIVE:
        exposure, contact_problems = _contact_of(request, today=day_of(interval_number(now)))
        problems.extend(contact_problems)
    elif request.exposure_date or request.exposure_level:
        problems.append(
            Violation("exposure_date", "and exposure_level are for RECURSIVE codes (a case's contact) only")
        )
    today = day_of(interval_number(now))
    # Keys older than the retention window are refused anyway; an onset up to 14 days before the oldest of them
    # still gives them a meaningful days-since-onset.
    oldest = today - dt.timedelta(days=retention_days + MAX_DAYS_SINCE_ONSET)
    if onset is not None and onset > today:
        problems.append(Violation("symptom_onset_date", f"{onset} is after today ({today})"))
    elif onset is not None and onset < oldest:
        problems.append(Violation("symptom_onset_date", f"{onset} is more than {(today - oldest).days} days ago"))
    ttl = request.ttl_seconds or default_ttl
    if ttl > codes.MAX_TTL_SECONDS:
        problems.append(Violation("ttl_seconds", f"at most {codes.MAX_TTL_SECONDS} seconds, got {ttl}"))
    if problems:
        raise InvalidArgument("the code request is not valid", problems)
    return CodeRequest(Diagnosis(ReportType(request.report_type), onset, exposure), ttl)


def _contact_of(request: authority_pb2.IssueCodeRequest, *, today: dt.date) -> tuple[dt.date | None, list[Violation]]:
    """The exposure day of a RECURSIVE code's contact, and what is wrong with the request as a contact's."""
    problems: list[Violation] = []
    if int(request.exposure_level) == ExposureLevel.F2:
        problems.append(
            Violation("exposure_level", "a contact of a contact (F2) is not asked to share: warnings stop at F2")
        )
    elif int(request.exposure_level) != ExposureLevel.F1:
        problems.append(Violation("exposure_level", "is required for a RECURSIVE code: F1, the contact of a case"))
    if request.symptom_onset_date:
        problems.append(Violation("symptom_onset_date", "is not for a RECURSIVE code: give the exposure date"))
    exposure = None
    if not request.exposure_date:
        problems.append(Violation("exposure_date", "is required for a RECURSIVE code: the day the contact was exposed"))
    else:
        try:
            exposure = parse_date(request.exposure_date, "exposure_date")
        except InvalidArgument as exc:
            problems.extend(exc.violations)
    if exposure is not None and exposure > today:
        problems.append(Violation("exposure_date", f"{exposure} is after today ({today})"))
    return exposure, problems


def code_of_upload(request: sharing_pb2.SubmitWithCodeRequest) -> str:
    """The normalised code of a Sharing.SubmitWithCode request, after the request-level checks."""
    code = codes.normalise(request.code)
    problems = check_key_count(len(request.keys))
    if code is None:
        problems.insert(
            0, Violation("code", f"must be {codes.LENGTH} letters and digits, as the health authority gave it")
        )
    if code is None or problems:  # a code that is None is one of the problems
        raise InvalidArgument("the upload is malformed", problems)
    return code


def venue_warning_from_request(
    request: authority_pb2.SubmitVenueWarningRequest,
    *,
    authority: str,
    default_region: str,
    now: int,
    retention_days: int,
) -> Submission:
    """Validates an Authority.SubmitVenueWarning request into the submission of its hours' identifiers: the venue's
    public key is used to check the owner's signature and derive the identifiers, and goes no further. Raises
    InvalidArgument listing every problem."""
    problems = check_submission_id(request.submission_id) + check_region(request.region)
    public_key, first, last = bytes(request.venue_public_key), request.first_hour, request.last_hour
    if len(public_key) != venues.PUBLIC_KEY_BYTES:
        problems.append(
            Violation("venue_public_key", f"must be {venues.PUBLIC_KEY_BYTES} bytes, got {len(public_key)}")
        )
    current = now // venues.HOUR_SECONDS
    if first > last:
        problems.append(Violation("last_hour", f"is before first_hour ({last} < {first})"))
    elif last - first + 1 > MAX_VENUE_WARNING_HOURS:
        problems.append(
            Violation("last_hour", f"the warning spans {last - first + 1} hours; at most {MAX_VENUE_WARNING_HOURS}")
        )
    if last > current:
        problems.append(Violation("last_hour", f"hour {last} is in the future (now is hour {current})"))
    if (first + 1) * venues.HOUR_SECONDS <= now - retention_days * SECONDS_PER_DAY:
        problems.append(
            Violation("first_hour", f"ended more than {retention_days} days ago: no phone still holds a visit")
        )
    if not problems and not venues.verify_warning(public_key, first, last, bytes(request.owner_signature)):
        problems.append(Violation("owner_signature", "is not the venue owner's signature over these hours"))
    if problems:
        raise InvalidArgument("the venue warning is not valid", problems)
    hours = np.arange(first, last + 1)
    identifiers = venues.hour_identifiers(venues.venue_id_of(public_key), hours)
    region = request.region or default_region
    digest = hashlib.sha256(
        b"venue warning" + region.encode() + public_key + struct.pack("<II", first, last) + request.owner_signature
    ).digest()
    return Submission(
        authority=authority,
        submission_id=request.submission_id,
        region=region,
        keys=(),
        digest=digest,
        venue_hours=tuple(VenueHour(i.tobytes(), int(h)) for i, h in zip(identifiers, hours)),
    )


def page_size_of(requested: int) -> int:
    """The page size of a ListBatches request: 0 means the default; more than the maximum is refused."""
    if requested > MAX_PAGE_SIZE:
        raise InvalidArgument("page too large", [Violation("page_size", f"at most {MAX_PAGE_SIZE}, got {requested}")])
    return requested or DEFAULT_PAGE_SIZE
