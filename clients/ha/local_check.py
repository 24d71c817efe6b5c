"""The server's key rules, run before anything is sent: the rules themselves are matcher.validation's, never a
copy, so a dry run refuses exactly the keys the server would (given the same clock and retention window).

The whole import is checked at once, so a key that appears twice anywhere in it is refused in every copy, as
the server refuses it within one submission: two entries for one key contradict each other.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from exposure.v1 import config_pb2, keys_pb2
from matcher.batches import section_of
from matcher.errors import Violation
from matcher.exposure_config import infectiousness_of
from matcher.model import DEFAULT_RETENTION_DAYS, DiagnosisKey, ReportType
from matcher.validation import check_keys

from .source_keys import SourceKey

# "keys[12].rolling_period": key 12 of a request, field rolling_period (google.rpc.BadRequest's field naming).
_KEY_FIELD = re.compile(r"^keys\[(\d+)\]\.?")


@dataclass(frozen=True, slots=True)
class Rejection:
    """A key that was refused, and why: ``"<field>: <description>"`` for each problem, joined with "; "."""

    key: SourceKey
    reason: str


@dataclass(frozen=True, slots=True)
class LocalVerdict:
    """An import split into the keys to send (as they will be sent) and the ones the rules refuse."""

    valid: tuple[tuple[SourceKey, keys_pb2.DiagnosisKey], ...]
    rejected: tuple[Rejection, ...]


def check_locally(
    keys: Sequence[SourceKey],
    *,
    default_report_type: ReportType,
    now: int,
    retention_days: int = DEFAULT_RETENTION_DAYS,
) -> LocalVerdict:
    """Applies the server's key rules to an import, as of ``now`` (unix seconds)."""
    protos = [key.to_proto(default_report_type) for key in keys]
    verdict = check_keys(protos, now=now, retention_days=retention_days)
    reasons = reasons_by_index(verdict.rejected)
    return LocalVerdict(
        valid=tuple((keys[index], protos[index]) for index, _ in verdict.accepted),
        rejected=tuple(Rejection(keys[index], reason) for index, reason in sorted(reasons.items())),
    )


def reasons_by_index(problems: Iterable[tuple[int, Violation]]) -> dict[int, str]:
    """Every problem of each key as one reason, "<field>: <description>; ...", the field relative to the key.

    Used for the local rules and for the server's KeyRejections alike, so both read the same.
    """
    grouped: dict[int, list[str]] = defaultdict(list)
    for index, violation in problems:
        # The key is already named by the rejection itself, so its field is named relative to it.
        field = _KEY_FIELD.sub("", violation.field) or "key"
        grouped[index].append(f"{field}: {violation.description}")
    return {index: "; ".join(parts) for index, parts in grouped.items()}


def key_index_of(field: str) -> int | None:
    """The request index of the key a violation's field names ("keys[3].rolling_period" -> 3), if any."""
    match = _KEY_FIELD.match(field)
    return None if match is None else int(match.group(1))


def not_published(
    keys: Iterable[tuple[SourceKey, keys_pb2.DiagnosisKey]], config: config_pb2.ExposureConfig
) -> list[tuple[SourceKey, str]]:
    """The keys the server accepts but will never publish under the exposure configuration ``config``, and why.

    The rule is the publisher's own (matcher.batches.section_of): a key whose days since onset the configuration
    maps to no infectiousness puts nothing in any batch, so no phone can match it."""
    found = []
    for source, proto in keys:
        days = proto.days_since_onset_of_symptoms if proto.HasField("days_since_onset_of_symptoms") else None
        key = DiagnosisKey(
            proto.key_data,
            proto.rolling_start_interval_number,
            proto.rolling_period,
            ReportType(proto.report_type),
            days,
        )
        if section_of(key, config) is not None:
            continue
        if infectiousness_of(config, days).name == "NONE":
            when = "unknown days since onset" if days is None else f"{days} days since onset"
            found.append(
                (source, f"{when}: the exposure configuration gives no infectiousness, so it is not published")
            )
        else:
            found.append((source, f"report type {ReportType(proto.report_type).name} is not published"))
    return found
