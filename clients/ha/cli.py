"""matcher-ha: a health authority's side of exposure notification, from the command line.

Inputs and outputs: push reads keys from --json F, --csv F or --export F (the input flags of
the design), so its machine-readable output is asked for with --output json. The other commands have no
input file named --json and take --json as the project's other commands do, as a shorthand for
--output json; they accept --output json as well.

Exit status: 0 when every key was valid and accepted, 1 on an error (one line on stderr; nothing, or only the
submissions before the error, sent), 2 on bad usage, 3 when the import went through but some keys were
rejected (they are listed with their reasons).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import json_format
from rich.console import Console
from rich.progress import Progress

from exposure.v1 import authority_pb2, authority_pb2_grpc, config_pb2, distribution_pb2, distribution_pb2_grpc, keys_pb2
from matcher.cli_support import (
    CliError,
    Parser,
    bounded_int,
    date_arg,
    main_for,
    optional_region_arg,
    print_json,
    read_text,
    time_arg,
)
from matcher.clock import clock, iso
from matcher.codes import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS
from matcher.exposure_config import check_config, config_in_force
from matcher.intervals import interval_start
from matcher.model import DEFAULT_RETENTION_DAYS, MAX_KEYS_PER_SUBMISSION, ReportType
from matcher.signing import SignatureError, load_signing_key, load_verifying_key

from . import venue
from .channel import authority_channel, authority_credentials, describe_rpc_error
from .gaen_export import build_export, read_export, verify_export, write_export_zip
from .key_files import read_csv_keys, read_json_keys
from .local_check import LocalVerdict, check_locally, not_published
from .push import PushError, PushSummary, push_keys
from .retry import DEFAULT_POLICY, RetryPolicy, call_with_retries
from .source_keys import CODE_REPORT_TYPES, DEFAULT_REPORT_TYPES, SourceKey, report_type_named

T = TypeVar("T")

PROG = "matcher-ha"
EXIT_SOME_REJECTED = 3
# A progress bar only when there is something to watch, and only on a terminal: stdout stays clean for --output
# json either way, since the bar is drawn on stderr.
PROGRESS_MIN_SUBMISSIONS = 4


# --- reading keys ------------------------------------------------------------------------------------------


def read_keys(args: argparse.Namespace) -> tuple[list[SourceKey], list[str]]:
    """The keys of the input the user chose, and notes about the file for the text output."""
    notes: list[str] = []
    if args.verify_key is not None and args.export is None:
        args.parser.error("--verify-key verifies a GAEN export: use it with --export")
    if args.json is not None:
        keys, path = read_json_keys(args.json), args.json
    elif args.csv is not None:
        keys, path = read_csv_keys(args.csv), args.csv
    else:
        export = read_export(args.export)
        path = args.export
        if args.verify_key is not None:
            verifying_key = load_pem(load_verifying_key, args.verify_key, "an ECDSA P-256 public key")
            try:
                signature = verify_export(export, verifying_key)
            except SignatureError as exc:
                raise CliError(f"{exc} ({args.verify_key})") from None
            info = signature.signature_info
            notes.append(
                f"export.sig verifies with {args.verify_key} "
                f"(key id {info.verification_key_id!r}, version {info.verification_key_version!r})"
            )
        keys = export.source_keys()
        if export.contents.revised_keys:
            notes.append(f"{len(export.contents.revised_keys)} revised keys left out: published batches cannot change")
    if not keys:
        raise CliError(f"{path}: the file holds no keys")
    return keys, notes


def load_pem(load: Callable[[Path], T], path: Path, what: str) -> T:
    """A key file, or one line saying what it should have been (cryptography's own messages run long)."""
    try:
        return load(path)
    except ValueError:
        raise CliError(f"{path}: not {what} in PEM form") from None


# --- push --------------------------------------------------------------------------------------------------


def cmd_push(args: argparse.Namespace) -> int:
    """Pushes diagnosis keys to the server over mutual TLS, in idempotent submissions of at most 30 keys.

    With --dry-run, reads and checks the keys with the server's rules and prints what would be sent; it needs
    no server, TLS folder or authority.
    """
    if not args.dry_run:
        missing = [flag for flag in ("server", "tls_dir", "authority") if getattr(args, flag) is None]
        if missing:
            names = ", ".join("--" + flag.replace("_", "-") for flag in missing)
            args.parser.error(f"{names} needed to push (or use --dry-run)")
        authority_credentials(args.tls_dir, args.authority)  # a wrong folder is told before the keys are read
    keys, notes = read_keys(args)
    now = clock(args.now)()
    verdict = check_locally(keys, default_report_type=args.report_type, now=now, retention_days=args.retention_days)
    if args.dry_run:
        show_dry_run(args, keys, verdict, notes, now)
        return EXIT_SOME_REJECTED if verdict.rejected else 0

    to_send = [proto for _, proto in verdict.valid]
    summary = PushSummary(0, 0, 0, 0, ())
    unpublished: list[tuple[SourceKey, str]] = []
    if to_send:
        channel = authority_channel(args.server, args.tls_dir, args.authority, server_name=args.tls_server_name)
        with channel, progress_bar(math.ceil(len(to_send) / MAX_KEYS_PER_SUBMISSION)) as progress:
            try:
                summary = push_keys(
                    channel,
                    to_send,
                    authority=args.authority,
                    region=args.region,
                    policy=policy_of(args),
                    progress=progress,
                )
            except PushError as exc:
                raise CliError(f"{args.server}: {exc}") from None
            refused = {index for index, _ in summary.rejected}
            accepted = [pair for index, pair in enumerate(verdict.valid) if index not in refused]
            unpublished = not_published(accepted, server_config(args, channel))
    rejected = [(r.key, f"not sent: {r.reason}") for r in verdict.rejected]
    rejected += [(verdict.valid[index][0], reason) for index, reason in summary.rejected]
    show_push(args, keys, verdict, summary, rejected, notes, unpublished)
    return EXIT_SOME_REJECTED if rejected else 0


def server_config(args: argparse.Namespace, channel: grpc.Channel) -> config_pb2.ExposureConfig:
    """The exposure configuration the server publishes with, which decides which accepted keys phones can match."""
    stub = distribution_pb2_grpc.DistributionStub(channel)
    try:
        signed = call_with_retries(
            lambda timeout: stub.GetExposureConfig(distribution_pb2.GetExposureConfigRequest(), timeout=timeout),
            policy_of(args),
        )
    except grpc.RpcError as error:
        raise CliError(
            f"{args.server}: the keys were sent, but the exposure configuration could not be read to say "
            f"how many will be published: {describe_rpc_error(error)}"
        ) from None
    return config_in_force(signed.SerializeToString())


def show_dry_run(
    args: argparse.Namespace, keys: list[SourceKey], verdict: LocalVerdict, notes: list[str], now: int
) -> None:
    if args.output == "json":
        print_json(
            {
                "parsed": len(keys),
                "valid": len(verdict.valid),
                "rejected": [{"key": r.key.key_data.hex(), "reason": r.reason} for r in verdict.rejected],
                "keys": [key_json(proto) for _, proto in verdict.valid],
            }
        )
        return
    submissions = math.ceil(len(verdict.valid) / MAX_KEYS_PER_SUBMISSION)
    lines = [
        f"{len(keys)} keys read, {len(verdict.valid)} valid, {len(verdict.rejected)} rejected "
        f"(checked with the server's rules as of {iso(now)})",
        *notes,
        f"would send {len(verdict.valid)} keys in {counted(submissions, 'submission')} "
        f"of at most {MAX_KEYS_PER_SUBMISSION}",
    ]
    if verdict.rejected:
        lines += ["rejected:", *rejection_lines([(r.key, r.reason) for r in verdict.rejected])]
    if verdict.valid:
        lines.append("keys to send:")
        lines.append(f"  {'key':32}  {'rolling_start':>13}  {'period':>6}  {'report_type':28}  onset  valid (UTC)")
        for _, proto in verdict.valid:
            entry = key_json(proto)
            onset = "-" if entry["days_since_onset"] is None else str(entry["days_since_onset"])
            start = entry["rolling_start"]
            window = f"{iso(interval_start(start))} .. {iso(interval_start(start + entry['rolling_period']))}"
            lines.append(
                f"  {entry['key']}  {entry['rolling_start']:>13}  {entry['rolling_period']:>6}  "
                f"{entry['report_type']:28}  {onset:>5}  {window}"
            )
    sys.stdout.write("".join(line + "\n" for line in lines))


def show_push(
    args: argparse.Namespace,
    keys: list[SourceKey],
    verdict: LocalVerdict,
    summary: PushSummary,
    rejected: list[tuple[SourceKey, str]],
    notes: list[str],
    unpublished: list[tuple[SourceKey, str]],
) -> None:
    published = summary.accepted - len(unpublished)
    if args.output == "json":
        print_json(
            {
                "parsed": len(keys),
                "valid": len(verdict.valid),
                "submissions": summary.submissions,
                "accepted": summary.accepted,
                "embargoed": summary.embargoed,
                "replayed": summary.replayed,
                "will_be_published": published,
                "not_published": [
                    {"key": key.key_data.hex(), "origin": key.origin, "reason": reason} for key, reason in unpublished
                ],
                "rejected": [
                    {"key": key.key_data.hex(), "origin": key.origin, "reason": reason} for key, reason in rejected
                ],
            }
        )
        return
    lines = [
        *notes,
        f"{len(keys)} keys read; sent {len(verdict.valid)} in {counted(summary.submissions, 'submission')}"
        + (f" ({summary.replayed} already sent before)" if summary.replayed else ""),
        f"accepted: {summary.accepted} ({summary.embargoed} of them embargoed until they expire)",
        f"will be published: {published}; accepted but never published: {len(unpublished)}",
    ]
    lines += rejection_lines(unpublished)
    lines.append(f"rejected: {len(rejected)}")
    lines += rejection_lines(rejected)
    sys.stdout.write("".join(line + "\n" for line in lines))


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def rejection_lines(rejected: Sequence[tuple[SourceKey, str]]) -> list[str]:
    """The rejected keys by where they are in the file, not by their bytes: a terminal's scroll-back is a log."""
    return [f"  {key.origin}: {reason}" for key, reason in rejected]


def key_json(proto: keys_pb2.DiagnosisKey) -> dict[str, Any]:
    return {
        "key": proto.key_data.hex(),
        "rolling_start": proto.rolling_start_interval_number,
        "rolling_period": proto.rolling_period,
        "report_type": ReportType(proto.report_type).name,
        "days_since_onset": (
            proto.days_since_onset_of_symptoms if proto.HasField("days_since_onset_of_symptoms") else None
        ),
    }


@contextmanager
def progress_bar(submissions: int) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr for long imports on a terminal; otherwise no progress callback at all."""
    if submissions < PROGRESS_MIN_SUBMISSIONS or not sys.stderr.isatty():
        yield None
        return
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("submissions", total=submissions)
        yield lambda done, total: bar.update(task, completed=done)


# --- issue-code and set-config -----------------------------------------------------------------------------


def cmd_issue_code(args: argparse.Namespace) -> None:
    """Issues a one-time code that lets a patient's phone upload its own keys; with --report-type RECURSIVE, a
    code for a case's contact (F1), whose phone then shares from the day of its exposure on, for F2 warnings."""
    contact = args.report_type == ReportType.RECURSIVE
    if contact and (args.exposure_date is None or args.exposure_level is None):
        raise CliError("a RECURSIVE code needs --exposure-date (the contact's day of exposure) and --exposure-level F1")
    if not contact and (args.exposure_date or args.exposure_level):
        raise CliError("--exposure-date and --exposure-level are for --report-type RECURSIVE (a case's contact) only")
    if args.exposure_level == "F2":
        raise CliError("a contact of a contact (F2) is not asked to share: warnings stop at F2")
    request = authority_pb2.IssueCodeRequest(
        report_type=keys_pb2.ReportType.ValueType(args.report_type),
        symptom_onset_date=args.onset.isoformat() if args.onset else "",
        region=args.region,
        ttl_seconds=args.ttl,
        exposure_date=args.exposure_date.isoformat() if args.exposure_date else "",
        exposure_level=authority_pb2.EXPOSURE_LEVEL_F1 if contact else authority_pb2.EXPOSURE_LEVEL_UNSPECIFIED,
    )
    response = call_authority(args, lambda stub, timeout: stub.IssueCode(request, timeout=timeout))
    if args.output == "json":
        print_json({"code": response.code, "expires_at": response.expires_at})
    else:
        sys.stdout.write(response.code + "\n")


def cmd_set_config(args: argparse.Namespace) -> None:
    """Replaces the exposure (risk scoring) configuration that phones download; the server signs it."""
    try:
        config = json_format.Parse(read_text(args.file, "an ExposureConfig in JSON"), config_pb2.ExposureConfig())
    except json_format.ParseError as exc:
        raise CliError(f"{args.file}: not an ExposureConfig in JSON: {' '.join(str(exc).split())}") from None
    problems = check_config(config)
    if problems:
        raise CliError(f"{args.file}: " + "; ".join(f"{v.field}: {v.description}" for v in problems))
    request = authority_pb2.SetExposureConfigRequest(config=config)
    response = call_authority(args, lambda stub, timeout: stub.SetExposureConfig(request, timeout=timeout))
    signed = response.signed
    stored = config_pb2.ExposureConfig.FromString(signed.config)
    if args.output == "json":
        print_json(
            {
                "version": stored.version,
                "issued_at": stored.issued_at,
                "key_id": signed.key_id,
                "key_version": signed.key_version,
            }
        )
    else:
        sys.stdout.write(
            f"exposure configuration version {stored.version}, issued {iso(stored.issued_at)}, "
            f"signed with key {signed.key_id} ({signed.key_version})\n"
        )


def call_authority(args: argparse.Namespace, call: Callable[[authority_pb2_grpc.AuthorityStub, float], Any]) -> Any:
    """One Authority call with retries; a failure is one line naming the server and the status."""
    with authority_channel(args.server, args.tls_dir, args.authority, server_name=args.tls_server_name) as channel:
        stub = authority_pb2_grpc.AuthorityStub(channel)
        try:
            return call_with_retries(lambda timeout: call(stub, timeout), policy_of(args))
        except grpc.RpcError as error:
            raise CliError(f"{args.server}: {describe_rpc_error(error)}") from None


def policy_of(args: argparse.Namespace) -> RetryPolicy:
    return RetryPolicy(max_attempts=args.attempts, call_timeout=args.timeout)


# --- venues ------------------------------------------------------------------------------------------------


def cmd_venue_create(args: argparse.Namespace) -> None:
    """Writes a new venue's QR code (payload.txt, qr.png, qr.svg) and the owner's private trace file (trace.json).
    The QR code is for the door; the trace file stays with the owner, who hands it to the health authority only
    to warn the venue's visitors."""
    try:
        created = venue.create(args.name, args.out)
    except (venue.VenueError, OSError) as exc:
        raise CliError(str(exc)) from None
    if args.output == "json":
        print_json({"name": args.name, "payload": created.owner.venue.payload(), "out": str(args.out)})
    else:
        sys.stdout.write(f"{args.out}: payload.txt, qr.png and qr.svg for the door; trace.json for the owner only\n")


def cmd_venue_warn(args: argparse.Namespace) -> None:
    """Warns a venue's visitors of a time window, with the owner's trace file: phones that checked in during the
    warned hours alert. Only the window's hours are sent, signed by the owner's key; the key itself is not."""
    try:
        request = venue.warning_request(venue.read_trace(args.trace), args.start, args.until, args.region)
    except venue.VenueError as exc:
        raise CliError(str(exc)) from None
    response = call_authority(args, lambda stub, timeout: stub.SubmitVenueWarning(request, timeout=timeout))
    if args.output == "json":
        print_json(
            {
                "hours": response.hours,
                "first_hour": request.first_hour,
                "last_hour": request.last_hour,
                "replayed": response.replayed,
            }
        )
    else:
        again = " (already warned: the first answer again)" if response.replayed else ""
        sys.stdout.write(f"warned {response.hours} hours, from {iso(request.first_hour * 3600)}{again}\n")


# --- export ------------------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> None:
    """Writes keys as a signed GAEN export zip (export.bin + export.sig), for interoperability tests.

    Keys keep the report type their file gives; keys without one are written without one, as GAEN files are.
    """
    keys, _ = read_keys(args)
    signing_key = load_pem(
        lambda path: load_signing_key(path, args.key_version), args.signing_key, "an ECDSA P-256 private key"
    )
    start = interval_start(min(key.rolling_start for key in keys))
    end = interval_start(max(key.rolling_start + key.rolling_period for key in keys))
    export_bin, export_sig = build_export(
        keys, signing_key, region=args.region, start_timestamp=start, end_timestamp=end, key_id=args.key_id
    )
    write_export_zip(args.out, export_bin, export_sig)
    if args.output == "json":
        print_json({"keys": len(keys), "out": str(args.out), "key_id": args.key_id or signing_key.key_id})
    else:
        sys.stdout.write(f"wrote {len(keys)} keys to {args.out}\n")


# --- the parser --------------------------------------------------------------------------------------------


def report_type_of(allowed: tuple[ReportType, ...]) -> Callable[[str], ReportType]:
    """argparse type for --report-type: one of ``allowed``, by name (any case); the help lists the same tuple."""

    def parse(text: str) -> ReportType:
        try:
            found = report_type_named(text)
        except ValueError:
            found = None
        if found not in allowed:
            raise argparse.ArgumentTypeError(f"{text!r}: choose one of {names_of(allowed)}")
        return found

    return parse


def names_of(report_types: tuple[ReportType, ...]) -> str:
    return ", ".join(t.name for t in report_types)


default_report_type = report_type_of(DEFAULT_REPORT_TYPES)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def add_connection(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_argument_group("connection (mutual TLS)")
    group.add_argument("--server", required=required, metavar="HOST:PORT", help="the server's authority listener")
    group.add_argument(
        "--tls-dir",
        required=required,
        type=Path,
        metavar="DIR",
        help="the authority's folder, DIR/authority-NAME of `matcher certs --out DIR`: ca.pem, NAME.pem and NAME.key",
    )
    group.add_argument("--authority", required=required, metavar="NAME", help="whose client certificate to present")
    group.add_argument(
        "--tls-server-name", metavar="NAME", help="check the server's certificate for this name instead of HOST"
    )
    group.add_argument(
        "--attempts", type=bounded_int(1, 20), default=DEFAULT_POLICY.max_attempts,
        help=f"tries per call while the failure is transient (default {DEFAULT_POLICY.max_attempts})",
    )  # fmt: skip
    group.add_argument(
        "--timeout", type=positive_seconds, default=DEFAULT_POLICY.call_timeout, metavar="SECONDS",
        help=f"deadline of each call (default {DEFAULT_POLICY.call_timeout:g})",
    )  # fmt: skip


def add_key_input(parser: argparse.ArgumentParser, *, with_defaults: bool) -> None:
    sources = parser.add_argument_group("keys (one of)").add_mutually_exclusive_group(required=True)
    sources.add_argument("--json", type=Path, metavar="FILE", help="a JSON key file (see docs/health-authority.md)")
    sources.add_argument("--csv", type=Path, metavar="FILE", help="a CSV key file with a header row")
    sources.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="a GAEN export: a .zip with export.bin and export.sig, or export.bin",
    )
    parser.add_argument(
        "--verify-key", type=Path, metavar="PEM",
        help="refuse an --export whose export.sig does not verify with this ECDSA P-256 public key",
    )  # fmt: skip
    if with_defaults:
        parser.add_argument(
            "--report-type", type=default_report_type, default=ReportType.CONFIRMED_TEST, metavar="TYPE",
            help="for keys whose file gives none (GAEN exports usually leave it out): one of "
            f"{names_of(DEFAULT_REPORT_TYPES)} (default CONFIRMED_TEST)",
        )  # fmt: skip


def add_output(parser: argparse.ArgumentParser, *, json_shorthand: bool) -> None:
    parser.add_argument(
        "--output", choices=("text", "json"), default="text",
        help="text for people (default), or json: exactly one JSON object on stdout, for machines",
    )  # fmt: skip
    if json_shorthand:
        parser.add_argument("--json", dest="output", action="store_const", const="json", help="--output json")


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)

    push = commands.add_parser(
        "push", help="push diagnosis keys", description=cmd_push.__doc__,
        epilog="--json FILE names the input; machine-readable output is --output json.",
    )  # fmt: skip
    add_key_input(push, with_defaults=True)
    push.add_argument("--dry-run", action="store_true", help="check locally and print what would be sent")
    push.add_argument("--region", type=optional_region_arg, default="", help="ISO 3166-1 alpha-2 region of the keys")
    push.add_argument("--now", type=time_arg, metavar="T", help="the clock for local checks: unix seconds or ISO 8601")
    push.add_argument(
        "--retention-days", type=bounded_int(1, 365), default=DEFAULT_RETENTION_DAYS, metavar="DAYS",
        help=f"the server's retention window, for local checks (default {DEFAULT_RETENTION_DAYS})",
    )  # fmt: skip
    add_connection(push, required=False)
    add_output(push, json_shorthand=False)
    push.set_defaults(func=cmd_push, parser=push)

    issue = commands.add_parser("issue-code", help="issue a one-time upload code", description=cmd_issue_code.__doc__)
    add_connection(issue, required=True)
    issue.add_argument(
        "--report-type", type=report_type_of(CODE_REPORT_TYPES), default=ReportType.CONFIRMED_TEST, metavar="TYPE",
        help=f"the diagnosis the uploaded keys will carry: one of {names_of(CODE_REPORT_TYPES)} (default "
        "CONFIRMED_TEST; RECURSIVE: a case's contact)",
    )  # fmt: skip
    issue.add_argument("--onset", type=date_arg, metavar="YYYY-MM-DD", help="symptom onset (UTC); omit if unknown")
    issue.add_argument(
        "--exposure-date",
        type=date_arg,
        metavar="YYYY-MM-DD",
        help="RECURSIVE codes: the day the contact was exposed (their phone's alert says it, or contact tracing)",
    )
    issue.add_argument(
        "--exposure-level",
        choices=("F1", "F2"),
        help="RECURSIVE codes: what the person was warned as; only F1 (near a case) shares, F2 is refused",
    )
    issue.add_argument(
        "--region", type=optional_region_arg, default="", help="region of the keys (default: the authority's)"
    )
    issue.add_argument(
        "--ttl", type=bounded_int(0, MAX_TTL_SECONDS), default=0, metavar="SECONDS",
        help=f"lifetime of the code (default: the server's, {DEFAULT_TTL_SECONDS})",
    )  # fmt: skip
    add_output(issue, json_shorthand=True)
    issue.set_defaults(func=cmd_issue_code)

    config = commands.add_parser(
        "set-config", help="replace the exposure configuration", description=cmd_set_config.__doc__
    )
    add_connection(config, required=True)
    config.add_argument("--file", required=True, type=Path, help="an exposure.v1.ExposureConfig in protobuf JSON")
    add_output(config, json_shorthand=True)
    config.set_defaults(func=cmd_set_config)

    venues = commands.add_parser("venue", help="make a venue's QR code and trace file")
    venue_commands = venues.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser, required=True)
    create = venue_commands.add_parser("create", help="a new venue", description=cmd_venue_create.__doc__)
    create.add_argument("--name", required=True, help="the venue's name, shown on visitors' phones (1..64 bytes)")
    create.add_argument("--out", required=True, type=Path, help="folder to write (created if missing)")
    add_output(create, json_shorthand=True)
    create.set_defaults(func=cmd_venue_create)

    warn = commands.add_parser(
        "venue-warn", help="warn a venue's visitors of a time window", description=cmd_venue_warn.__doc__
    )
    add_connection(warn, required=True)
    warn.add_argument("--trace", required=True, type=Path, help="the venue owner's trace.json")
    warn.add_argument(
        "--from",
        dest="start",
        required=True,
        type=time_arg,
        metavar="T",
        help="start of the window: unix seconds or ISO 8601",
    )
    warn.add_argument("--until", required=True, type=time_arg, metavar="T", help="end of the window")
    warn.add_argument(
        "--region", type=optional_region_arg, default="", help="region of the warning (default: the authority's)"
    )
    add_output(warn, json_shorthand=True)
    warn.set_defaults(func=cmd_venue_warn)

    export = commands.add_parser("export", help="write keys as a signed GAEN export", description=cmd_export.__doc__)
    add_key_input(export, with_defaults=False)
    export.add_argument("--out", required=True, type=Path, help="the .zip to write")
    export.add_argument("--signing-key", required=True, type=Path, metavar="PEM", help="ECDSA P-256 private key")
    export.add_argument(
        "--region", type=optional_region_arg, default="", help="the export's region (ISO 3166-1 alpha-2)"
    )
    export.add_argument("--key-id", help="verification_key_id to write (default: derived from the public key)")
    export.add_argument("--key-version", default="v1", help="verification_key_version to write (default v1)")
    add_output(export, json_shorthand=False)
    export.set_defaults(func=cmd_export, parser=export)
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    main_for(PROG, build_parser, argv)


if __name__ == "__main__":
    main()
