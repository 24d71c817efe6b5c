"""The domain: diagnosis keys, submissions, and the named limits every rule refers to.

Pure data. No grpc, storage or clock in here; the limits are the one place each number is defined, and
docs/validation.md lists each with its reason (a test checks that both agree).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from .intervals import INTERVAL_SECONDS, INTERVALS_PER_DAY, interval_start


class ReportType(enum.IntEnum):
    """How a diagnosis was made; the numbers are GAEN's."""

    UNSPECIFIED = 0
    CONFIRMED_TEST = 1
    CONFIRMED_CLINICAL_DIAGNOSIS = 2
    SELF_REPORT = 3
    RECURSIVE = 4
    REVOKED = 5


class Infectiousness(enum.IntEnum):
    """Infectiousness on a key's day; NONE is never published."""

    NONE = 0
    STANDARD = 1
    HIGH = 2


# --- Limits -------------------------------------------------------------------------------------------------
KEY_LENGTH = 16
MIN_ROLLING_PERIOD = 1
MAX_ROLLING_PERIOD = INTERVALS_PER_DAY
MAX_KEYS_PER_SUBMISSION = 30
MIN_DAYS_SINCE_ONSET = -14
MAX_DAYS_SINCE_ONSET = 14
DEFAULT_RETENTION_DAYS = 14
# A key that is still valid is published no earlier than this long after it expires: the clock skew that GAEN
# key servers allow for (2 hours), and more than the 120 s clock skew matching allows, so that a published key's
# last identifiers cannot be replayed into a window where phones would still accept them.
EMBARGO_GRACE_SECONDS = 2 * 3600
SUBMISSION_ID_MAX_LENGTH = 128
SUBMISSION_ID_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
REGION_LENGTH = 2
MIN_TX_POWER_DBM = -40
MAX_TX_POWER_DBM = 20
DEFAULT_PAGE_SIZE = 100  # batch headers per ListBatches answer unless asked otherwise
MAX_PAGE_SIZE = 1000  # about 250 KB of headers: far below gRPC's 4 MiB message limit
# The report types of cases (F0): a match with one of their keys is an F1 exposure. A match with a RECURSIVE key,
# one a case's contact shared, is an F2 exposure; the contacts of F2 are never warned (warnings stop at F2).
CASE_REPORT_TYPES = frozenset(
    {ReportType.CONFIRMED_TEST, ReportType.CONFIRMED_CLINICAL_DIAGNOSIS, ReportType.SELF_REPORT}
)
PUBLISHABLE_REPORT_TYPES = CASE_REPORT_TYPES | {ReportType.RECURSIVE}
# A contact (F1) shares the days from its exposure on, at most this many: enough to cover the days it may have been
# infectious before it was told (docs/privacy.md), and a bound on what contacts add to every batch.
CONTACT_SHARE_DAYS = 7
# A venue warning covers at most a day of hours: an outbreak at a venue is a visit, not a season; a longer one is
# several warnings, each checked.
MAX_VENUE_WARNING_HOURS = 24


class ExposureLevel(enum.IntEnum):
    """The tier of a warning; the numbers are exposure.v1.ExposureLevel's."""

    F1 = 1  # near a case
    F2 = 2  # near a case's contact


def level_of(report_type: int) -> ExposureLevel:
    """The tier of a match with a key of this report type."""
    return ExposureLevel.F2 if report_type == ReportType.RECURSIVE else ExposureLevel.F1


@dataclass(frozen=True, slots=True)
class DiagnosisKey:
    """One validated daily key of a diagnosed person."""

    key_data: bytes
    rolling_start: int
    rolling_period: int
    report_type: ReportType
    days_since_onset: int | None = None
    # Contact-interval pruning: a bitmap over the key's validity of the intervals to publish (bit j, little-endian
    # within bytes, is interval rolling_start + j), or None for every interval.
    contact_intervals: bytes | None = None

    @property
    def end_interval(self) -> int:
        """The first interval after the key's validity."""
        return self.rolling_start + self.rolling_period

    @property
    def ends_at(self) -> int:
        """Unix seconds at which the key stopped being valid: the time its retention counts from.

        A key (and the fingerprint that keeps it from being stored twice) is kept until ``ends_at + retention``:
        exactly as long as validation would still accept the same key again.
        """
        return interval_start(self.end_interval)

    def published_offsets(self) -> list[int]:
        """The offsets j (interval rolling_start + j) of the intervals whose elements are published."""
        if self.contact_intervals is None:
            return list(range(self.rolling_period))
        bits = int.from_bytes(self.contact_intervals, "little")
        return [j for j in range(self.rolling_period) if bits >> j & 1]

    @property
    def elements(self) -> int:
        """How many elements the key publishes: one per published interval."""
        if self.contact_intervals is None:
            return self.rolling_period
        return int.from_bytes(self.contact_intervals, "little").bit_count()

    def publish_after(self) -> int:
        """Unix seconds before which the key must not be published (the embargo of a still-valid key)."""
        return self.ends_at + EMBARGO_GRACE_SECONDS

    def fingerprint(self) -> bytes:
        """Identity of a key for de-duplication across submissions: same key data and same start."""
        return hashlib.sha256(self.key_data + self.rolling_start.to_bytes(4, "little")).digest()


@dataclass(frozen=True, slots=True)
class VenueHour:
    """One warned hour of one venue: its hourly identifier ``VID_h`` (matcher/venues.py) and the hour number
    ``h = floor(unix_seconds / 3600)``. Published as the element ``(VID_h, h)`` of a venue section."""

    identifier: bytes
    hour: int

    @property
    def end_interval(self) -> int:
        """The first interval after the hour: its retention counts from there, as a key's from its end."""
        return (self.hour + 1) * 3600 // INTERVAL_SECONDS

    @property
    def ends_at(self) -> int:
        """Unix seconds at which the hour ended (to its interval): the time its retention counts from."""
        return interval_start(self.end_interval)

    def publish_after(self) -> int:
        """A warned hour may be published at once: nobody can replay a venue's identifier into a warning."""
        return 0

    def fingerprint(self) -> bytes:
        """Identity for de-duplication: two cases at one venue in one hour warn that hour once."""
        return hashlib.sha256(b"venue hour" + self.identifier + self.hour.to_bytes(4, "little")).digest()


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated submission: the keys (or a venue warning's hours) to store, and what identifies it for
    idempotency.

    ``digest`` covers the request's content (not its id), so that a repeated id with other content is told apart.
    """

    authority: str
    submission_id: str
    region: str
    keys: tuple[DiagnosisKey, ...]
    digest: bytes
    venue_hours: tuple[VenueHour, ...] = ()


def retention_cutoff_interval(now: int, retention_days: int) -> int:
    """Keys that ended at or before this interval are outside the retention window and can match nothing."""
    return now // INTERVAL_SECONDS - retention_days * INTERVALS_PER_DAY
