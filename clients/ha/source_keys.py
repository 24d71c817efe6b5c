"""A diagnosis key as a key file gave it, and the one conversion to the API's DiagnosisKey.

Every reader (JSON, CSV, GAEN export) produces :class:`SourceKey` values. They keep where each key came from
(``line 7``, ``keys[3]``) so that a rejection, local or from the server, can be traced back to the file, and
they keep "the file gave no report type" apart from any real report type, so that ``--report-type`` fills in
only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from exposure.v1 import keys_pb2
from matcher.model import CASE_REPORT_TYPES, MAX_ROLLING_PERIOD, PUBLISHABLE_REPORT_TYPES, ReportType

UINT32_MAX = 2**32 - 1
SINT32_MIN, SINT32_MAX = -(2**31), 2**31 - 1

# What `push --report-type` may name, the default for keys whose file says nothing: a case's diagnosis. A contact's
# keys (RECURSIVE) come from the contact's own phone with a RECURSIVE code, never from an authority's key file.
DEFAULT_REPORT_TYPES = tuple(sorted(CASE_REPORT_TYPES))
# What `issue-code --report-type` may name: the published report types (RECURSIVE: a case's contact, for F2).
CODE_REPORT_TYPES = tuple(sorted(PUBLISHABLE_REPORT_TYPES))


class KeyFileError(ValueError):
    """A key file that cannot be read as keys at all: one line naming the file, the place and the field."""


@dataclass(frozen=True, slots=True)
class SourceKey:
    """One key as read from a file.

    ``report_type`` is None when the file did not say (GAEN exports usually do not); ``days_since_onset`` is
    None when unknown. Values are already within the ranges the API's fields can carry; whether they are
    *valid* is for :mod:`matcher.validation` to say.
    """

    origin: str
    key_data: bytes
    rolling_start: int
    rolling_period: int = MAX_ROLLING_PERIOD
    report_type: ReportType | None = None
    days_since_onset: int | None = None

    def to_proto(self, default_report_type: ReportType) -> keys_pb2.DiagnosisKey:
        """The key as it is sent, with ``default_report_type`` where the file gave none."""
        key = keys_pb2.DiagnosisKey(
            key_data=self.key_data,
            rolling_start_interval_number=self.rolling_start,
            rolling_period=self.rolling_period,
            report_type=keys_pb2.ReportType.ValueType(self.report_type or default_report_type),
        )
        if self.days_since_onset is not None:
            key.days_since_onset_of_symptoms = self.days_since_onset
        return key


def report_type_named(text: str) -> ReportType:
    """A report type from its name (``CONFIRMED_TEST``, any case); UNSPECIFIED is not a name one can give."""
    name = text.strip().upper().removeprefix("REPORT_TYPE_")
    try:
        found = ReportType[name]
    except KeyError:
        found = None
    if found is None or found == ReportType.UNSPECIFIED:
        names = ", ".join(t.name for t in ReportType if t != ReportType.UNSPECIFIED)
        raise ValueError(f"{text!r} is not a report type ({names})")
    return found


def check_range(value: int, low: int, high: int, what: str) -> int:
    """``value`` if the API's field can carry it; whether it is a valid value is validation's job."""
    if not low <= value <= high:
        raise ValueError(f"{value} does not fit the field ({what}, {low}..{high})")
    return value
