"""Who is calling and what they may do.

The caller of an authority method is the common name of the client certificate that the TLS handshake verified
against the authority CA: never a field of the request. What each authority may do comes from the authorities
file (``authorities.json`` in the server's folder, written by `matcher certs`). A verified certificate whose name
is not in that file (an unknown or revoked authority) is refused with PERMISSION_DENIED.

An entry may pin its authority's certificates by their SHA-256 fingerprints (``certificate_sha256``, more than
one while a certificate is being replaced); then a certificate with the right name but another fingerprint is
refused with UNAUTHENTICATED: a CA that issued a second certificate in an authority's name (by mistake, or
because its key leaked) does not make a second authority, and one certificate can be revoked without a CRL.
Pins are optional, because a deployment whose authority CA issues short-lived certificates automatically cannot
list them; `matcher certs` always writes them, and the server logs every authority it accepts unpinned.

The file is read at start and again on SIGHUP (``Authorities.reload``): the new policies replace the old ones
in one assignment, so a call sees the one or the other, never a mixture; a file that does not load is logged
and the old policies stay in force.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .errors import PermissionDenied, ResourceExhausted, Unauthenticated
from .model import PUBLISHABLE_REPORT_TYPES, ReportType
from .ratelimit import TokenBuckets
from .validation import check_region

log = logging.getLogger(__name__)

PINS = "certificate_sha256"  # the authorities file's field: the fingerprints of an authority's certificates


def fingerprint(certificate: x509.Certificate) -> str:
    """What a pin is: the SHA-256 of the certificate's DER form, as lower-case hex (as `openssl x509 -fingerprint
    -sha256` prints it, without the colons)."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def _pins(entry: dict[str, Any]) -> frozenset[str]:
    value = entry.get(PINS, [])
    if not isinstance(value, list) or not all(isinstance(pin, str) for pin in value):
        raise ValueError(f"{PINS} must be a list of SHA-256 fingerprints in hex")
    pins = frozenset(pin.replace(":", "").lower() for pin in value)
    bad = sorted(pin for pin in pins if len(pin) != 64 or not set(pin) <= set("0123456789abcdef"))
    if bad:
        raise ValueError(f"{PINS}: {bad[0]!r} is not a SHA-256 fingerprint (64 hex digits)")
    return pins


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
    # The fingerprints of the certificates that may speak for this authority; empty: any the authority CA issued
    # in its name.
    pins: frozenset[str] = frozenset()

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
                pins=_pins(entry),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: authority {name!r} is malformed ({exc})") from None
        if not regions or any(check_region(r) or not r for r in regions):
            raise ValueError(f"{path}: authority {name!r} needs one or more ISO 3166-1 alpha-2 regions")
        policies[name] = policy
    return policies


def _flag(entry: dict[str, Any], name: str) -> bool:
    value = entry.get(name, False)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _auth_property(context: grpc.ServicerContext, name: str) -> list[bytes]:
    """The values of one property of the call's verified peer (none without one)."""
    # grpcio gives each property as a list of bytes; types-grpcio types the map as str -> bytes (its own FIXME).
    values: list[bytes] = context.auth_context().get(name) or []  # type: ignore[assignment]
    return values


def caller_name(context: grpc.ServicerContext) -> str:
    """The authority named by the verified client certificate; UNAUTHENTICATED when there is none."""
    names = _auth_property(context, "x509_common_name")
    if not names:
        raise Unauthenticated(
            "this method needs a health authority's client certificate: call the authority port with mutual TLS"
        )
    return names[0].decode("utf-8", "replace")


def caller_fingerprint(context: grpc.ServicerContext) -> str | None:
    """The fingerprint of the client certificate the handshake verified, None when there is none."""
    pems = _auth_property(context, "x509_pem_cert")
    return fingerprint(x509.load_pem_x509_certificate(pems[0])) if pems else None


class Authorities:
    """The policies, and a per-authority rate limit on submissions (a token bucket per server process).

    The policies are one immutable mapping, replaced whole by ``reload``; each method reads it once."""

    def __init__(self, policies: dict[str, AuthorityPolicy], path: Path | None = None) -> None:
        self._policies = policies
        self._path = path
        self._buckets = TokenBuckets()
        _warn_unpinned(policies)

    @classmethod
    def from_file(cls, path: Path) -> Authorities:
        """The policies of the authorities file at ``path`` (ValueError naming the problem), reloadable."""
        return cls(load_policies(path), path)

    def reload(self) -> bool:
        """Reads the authorities file again (on SIGHUP). Calls in flight finish under the policies they started
        with; the next ones get the new. A file that does not load is logged in one line and changes nothing.
        Authorities made from a mapping rather than a file have nothing to read again: False."""
        if self._path is None:
            return False
        try:
            policies = load_policies(self._path)
        except ValueError as exc:
            log.error("authorities file not reloaded, the previous one stays in force: %s", exc)
            return False
        self._policies = policies  # one assignment: atomic for the threads that read it
        log.info("authorities file reloaded: %d authorities (%s)", len(policies), ", ".join(sorted(policies)))
        _warn_unpinned(policies)
        return True

    def of(self, context: grpc.ServicerContext) -> AuthorityPolicy:
        name = caller_name(context)
        policy = self._policies.get(name)
        if policy is None:
            raise PermissionDenied(f"authority {name!r} is not (or no longer) allowed to use this service")
        if policy.pins and caller_fingerprint(context) not in policy.pins:
            raise Unauthenticated(
                f"this client certificate is not one the authorities file pins for authority {name!r} "
                "(a replaced or revoked certificate, or one issued in its name by mistake)"
            )
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


def _warn_unpinned(policies: dict[str, AuthorityPolicy]) -> None:
    unpinned = sorted(name for name, policy in policies.items() if not policy.pins)
    if unpinned:
        log.warning(
            "authorities without pinned certificates (%s): any certificate the authority CA issues in their name "
            'is accepted as theirs (docs/operations.md, "Authorities")',
            ", ".join(unpinned),
        )
