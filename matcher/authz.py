"""Who is calling and what they may do.

The caller of an authority method is the common name of the client certificate that the TLS handshake verified
against the authorities' CA: never a field of the request. What each authority may do comes from the
authorities file (``authorities.json`` in the TLS folder, written by `matcher certs`). A verified certificate
whose name is not in that file (an unknown or revoked authority) is refused with PERMISSION_DENIED.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc

from .errors import PermissionDenied, ResourceExhausted, Unauthenticated
from .model import PUBLISHABLE_REPORT_TYPES, ReportType
from .ratelimit import TokenBuckets
from .validation import check_region


@dataclass(frozen=True)
class AuthorityPolicy:
    name: str
    regions: tuple[str, ...]  # the first is the default for requests that name none
    report_types: frozenset[ReportType]
    may_set_config: bool
    submissions_per_minute: int
    # Contact-interval pruning (off unless chosen): publish only the intervals in which a case's phone heard
    # another phone. It saves bandwidth and reveals the case's pattern of contacts to the server (docs/privacy.md).
    contact_intervals_only: bool = False
    # RECURSIVE codes (contacts of cases sharing, for F2 warnings) an authority may issue a day: contacts multiply
    # the keys published a day, and this bounds what one authority can add (docs/privacy.md).
    contact_codes_per_day: int = 1000

    @property
    def default_region(self) -> str:
        return self.regions[0]

    def require_region(self, region: str) -> str:
        """The region a request is for (its own, or the default), if the authority may submit for it."""
        chosen = region or self.default_region
        if chosen not in self.regions:
            raise PermissionDenied(f"authority {self.name!r} may not submit for region {chosen!r}")
        return chosen

    def require_report_types(self, report_types: Iterable[int]) -> None:
        # Only types that could be published are a question of permission; the others are refused by validation.
        refused = sorted({t for t in report_types if t in PUBLISHABLE_REPORT_TYPES} - self.report_types)
        if refused:
            names = ", ".join(ReportType(t).name for t in refused)
            raise PermissionDenied(f"authority {self.name!r} may not submit keys of report type {names}")


def load_policies(path: Path) -> dict[str, AuthorityPolicy]:
    """Reads the authorities file; raises ValueError naming the first problem."""
    try:
        document = json.loads(Path(path).read_text())
        entries = document["authorities"]
        if not isinstance(entries, dict):
            raise TypeError('"authorities" must be an object of authority names')
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not an authorities file ({exc})") from None
    policies: dict[str, AuthorityPolicy] = {}
    for name, entry in entries.items():
        try:
            regions = tuple(entry["regions"])
            report_types = frozenset(ReportType[t] for t in entry["report_types"])
            policy = AuthorityPolicy(
                name=name,
                regions=regions,
                report_types=report_types,
                may_set_config=bool(entry.get("may_set_config", False)),
                submissions_per_minute=int(entry.get("submissions_per_minute", 600)),
                contact_intervals_only=_flag(entry, "contact_intervals_only"),
                contact_codes_per_day=int(entry.get("contact_codes_per_day", 1000)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: authority {name!r} is malformed ({exc})") from None
        if not regions or any(check_region(r) or not r for r in regions):
            raise ValueError(f"{path}: authority {name!r} needs one or more ISO 3166-1 alpha-2 regions")
        policies[name] = policy
    return policies


def _flag(entry: dict, name: str) -> bool:
    value = entry.get(name, False)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def caller_name(context: grpc.ServicerContext) -> str:
    """The authority named by the verified client certificate; UNAUTHENTICATED when there is none."""
    names = context.auth_context().get("x509_common_name")
    if not names:
        raise Unauthenticated(
            "this method needs a health authority's client certificate: call the authority port with mutual TLS"
        )
    return names[0].decode("utf-8", "replace")


class Authorities:
    """The policies, and a per-authority rate limit on submissions (a token bucket per server process)."""

    def __init__(self, policies: dict[str, AuthorityPolicy]) -> None:
        self._policies = policies
        self._buckets = TokenBuckets()

    def of(self, context: grpc.ServicerContext) -> AuthorityPolicy:
        name = caller_name(context)
        policy = self._policies.get(name)
        if policy is None:
            raise PermissionDenied(f"authority {name!r} is not (or no longer) allowed to use this service")
        return policy

    def named(self, authority: str) -> AuthorityPolicy | None:
        """The policy of an authority by name (the issuer of a code), None once it is revoked."""
        return self._policies.get(authority)

    def may_still_issue(self, authority: str, region: str, report_type: int) -> bool:
        """Whether a code issued by ``authority`` for this region and report type is still honoured: not once the
        authority is revoked (removed from the authorities file) or lost that right, whatever the code's lifetime."""
        policy = self._policies.get(authority)
        return policy is not None and region in policy.regions and report_type in policy.report_types

    def take(self, policy: AuthorityPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        """Spends one submission from the authority's budget, or refuses with RESOURCE_EXHAUSTED."""
        self._spend(policy.name, policy.submissions_per_minute, 60.0, "submissions a minute", clock)

    def take_contact_code(self, policy: AuthorityPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        """Spends one RECURSIVE code from the authority's daily budget, or refuses with RESOURCE_EXHAUSTED."""
        self._spend(f"{policy.name}\0contact", policy.contact_codes_per_day, 86_400.0, "contact codes a day", clock)

    def _spend(self, bucket: str, per_period: int, period: float, what: str, clock: Callable[[], float]) -> None:
        """A token bucket per budget: ``per_period`` a ``period`` seconds, that many at once at most."""
        wait = self._buckets.take(bucket, per_period, period, clock())
        if wait is not None:
            authority = bucket.split("\0")[0]
            raise ResourceExhausted(
                f"authority {authority!r} is over its limit of {per_period} {what}; retry in {wait:.1f} s",
                retry_after=wait,
            )
