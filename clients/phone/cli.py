"""``matcher-phone``: a phone's side of exposure notification, from the command line.

The phone keeps its daily keys and what it heard in its own SQLite database (--db), downloads and verifies the
published batches, and matches and scores on the device. No command sends what the phone observed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import grpc
import numpy as np

from matcher import crypto
from matcher.certs import check_certificate
from matcher.cli_support import (
    CHANNEL_OPTIONS,
    CliError,
    Parser,
    date_arg,
    decode_text,
    hex_arg,
    main_for,
    print_json,
    read_bytes,
    read_text,
    time_arg,
)
from matcher.clock import check_time, clock, iso
from matcher.codes import normalise
from matcher.exposure_config import config_in_force
from matcher.intervals import interval_number
from matcher.model import MAX_ROLLING_PERIOD, MIN_ROLLING_PERIOD
from matcher.signing import TrustedKeys, load_verifying_key
from matcher.venues import VenueError, parse_payload

from .decoy import DEFAULT_DECOYS_PER_DAY, decoy_due, send_decoy
from .keys import DEFAULT_TX_POWER_DBM, broadcast_at, key_for_day, set_tx_power
from .matching import match_new
from .mirror import MirrorClient, MirrorError, ssl_context, sync_mirror
from .scoring import DayRisk, VenueRisk, score, venue_risks
from .share import NotAContact, exposure_day, share
from .store import PhoneStore
from .sync import SyncReport, sync

PROG = "matcher-phone"
# A visit whose exit the person did not record lasts this long; longer than a day is not a visit.
TYPICAL_STAY_SECONDS = 3600
MAX_STAY_SECONDS = 24 * 3600
# How a day's tier reads (scoring.DayRisk.level).
TIER_WORDS = {"F1": "near a case (F1)", "F2": "near a case's contact (F2)"}
SIGHTING_FORM = '{"rpi": HEX, "aem": HEX, "rssi": INT, "time": UNIX_SECONDS}'


def _open(args: argparse.Namespace, *, create: bool = False) -> PhoneStore:
    """The phone's database. Only ``init`` creates one: any other command given a mistyped --db would otherwise
    make an empty database and answer from it, and ``check`` would report a false all-clear."""
    if not args.db:
        raise CliError("--db PATH is required: the phone's database")
    path = Path(args.db)
    if path.is_dir():
        raise CliError(f"--db {path}: is a folder, not a phone database")
    if not path.exists():
        if not create:
            raise CliError(f"--db {path}: no such phone database (make one with `{PROG} --db {path} init`)")
        if not path.parent.is_dir():
            raise CliError(f"--db {path}: no such folder {path.parent}")
    store = PhoneStore(path)
    store.expire(clock(args.now)())
    return store


def _channel(args: argparse.Namespace) -> tuple[grpc.Channel, TrustedKeys]:
    tls = Path(args.tls_dir)
    if not tls.is_dir():
        raise CliError(
            f"--tls-dir {tls}: no such folder (DIR/phone of `matcher certs --out DIR`: ca.pem, signing.pub.pem)"
        )
    root = read_bytes(tls / "ca.pem", "the CA certificate that issued the server's")
    check_certificate(root, tls / "ca.pem")
    credentials = grpc.ssl_channel_credentials(root_certificates=root)
    trusted = TrustedKeys([load_verifying_key(tls / "signing.pub.pem")])
    return grpc.secure_channel(args.server, credentials, options=CHANNEL_OPTIONS), trusted


def cmd_init(args: argparse.Namespace) -> None:
    """Creates the phone's database and today's key, and records the phone's calibrated TX power."""
    now = clock(args.now)()
    with _open(args, create=True) as store:
        set_tx_power(store, args.tx_power)
        start, _ = key_for_day(store, interval_number(now))
    if args.json:
        print_json({"db": args.db, "key_day_start": start})
    else:
        print(f"{args.db}: ready; today's key starts at interval {start}")


def cmd_broadcast(args: argparse.Namespace) -> None:
    """Prints the RPI and AEM the phone advertises now."""
    with _open(args) as store:
        out = broadcast_at(store, clock(args.now)())
    if args.json:
        print_json({"interval": out.interval, "rpi": out.rpi.hex(), "aem": out.aem.hex()})
    else:
        print(f"interval {out.interval}: rpi {out.rpi.hex()} aem {out.aem.hex()}")


def cmd_rpis(args: argparse.Namespace) -> None:
    """Prints the RPIs a key broadcasts over its validity."""
    if not MIN_ROLLING_PERIOD <= args.period <= MAX_ROLLING_PERIOD:
        raise ValueError(f"--period must be {MIN_ROLLING_PERIOD}..{MAX_ROLLING_PERIOD}, got {args.period}")
    if args.start < 0 or args.start + args.period > 2**32:
        raise ValueError(f"--start must be an interval number 0..{2**32 - args.period}, got {args.start}")
    rpis = crypto.rpis(args.tek, args.start, args.period)
    intervals = np.arange(args.start, args.start + args.period)
    if args.json:
        print_json([{"interval": int(i), "rpi": rpi.tobytes().hex()} for i, rpi in zip(intervals, rpis)])
    else:
        sys.stdout.write("".join(rpi.tobytes().hex() + "\n" for rpi in rpis))


def parse_sightings(lines: Iterable[str]) -> Iterator[tuple[bytes, int, int, int, bytes]]:
    """Reads JSON lines ``{"rpi": hex, "aem": hex, "rssi": int, "time": unix_seconds}``; the interval is the time's.
    Raises ValueError naming the line for anything malformed."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"expected a JSON object {SIGHTING_FORM}, got {type(record).__name__}")
            rpi, aem = bytes.fromhex(record["rpi"]), bytes.fromhex(record["aem"])
            rssi, time = record["rssi"], record["time"]
            if len(rpi) != 16 or len(aem) != 4:
                raise ValueError("rpi must be 16 bytes and aem 4 bytes of hex")
            if not (isinstance(rssi, int) and -127 <= rssi <= 20) or not isinstance(time, int):
                raise ValueError("rssi must be an integer -127..20 and time an integer (unix seconds)")
            check_time(time, f"time {time}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"line {number}: {detail}") from None
        yield rpi, interval_number(time), time, rssi, aem


def cmd_observe(args: argparse.Namespace) -> None:
    """Records sightings, one JSON object a line, from FILE or standard input; all or nothing."""
    if args.file in (None, "-"):
        name = "standard input"
        text = decode_text(sys.stdin.buffer.read(), name, f"sightings as JSON lines {SIGHTING_FORM}")
    else:
        text, name = read_text(args.file, f"sightings as JSON lines {SIGHTING_FORM}"), args.file
    try:
        rows = list(parse_sightings(text.splitlines()))
    except ValueError as exc:
        raise CliError(f"{name}: {exc}") from None
    with _open(args) as store:
        count = store.add_sightings(rows)
    print_json({"recorded": count}) if args.json else print(f"recorded {count} sightings")


def cmd_sync(args: argparse.Namespace) -> int:
    """Downloads and verifies new batches and the exposure configuration, from the service (--server) or from a
    static mirror of it over HTTPS (--mirror), with the same checks. With --server, also sends a decoy share when
    the phone's random schedule has one due (--decoys-per-day)."""
    if not 0 <= args.decoys_per_day <= 1000:  # also refuses nan
        raise CliError(f"--decoys-per-day must be 0..1000, got {args.decoys_per_day:g}")
    decoy = None
    if args.mirror:
        report, total = _sync_from_mirror(args)
    else:
        channel, trusted = _channel(args)
        with channel, _open(args) as store:
            try:
                report = sync(channel, store, trusted, chunk_size=args.chunk_size)
            except grpc.RpcError as exc:
                raise CliError(f"sync with {args.server} failed: {exc.code().name}: {exc.details()}") from None
            total = store.get_int("bytes_downloaded")
            if decoy_due(store, clock(args.now)(), args.decoys_per_day):
                decoy = _decoy(args)
    if args.json:
        print_json(
            {
                "new_batches": report.new_batches,
                "refused": [r for _, r in report.refused],
                "bytes_downloaded": report.bytes_downloaded,
                "bytes_downloaded_total": total,
                "config_version": report.config_version,
                "interrupted": report.interrupted,
                "decoy": decoy,
            }
        )
    else:
        print(f"{len(report.new_batches)} new batches, {report.bytes_downloaded} bytes downloaded")
        if decoy:
            print(f"decoy share: {decoy}")
        for _, reason in report.refused:
            print(f"refused: {reason}")
        if report.interrupted:
            print(f"interrupted: {report.interrupted}")
    return 1 if report.refused or report.interrupted else 0


def _decoy(args: argparse.Namespace) -> str:
    """Sends one decoy share on a connection of its own, as a share goes; what happened, in a word or a line. A
    decoy that fails is not the sync's failure: the schedule sends another later."""
    channel, _ = _channel(args)
    with channel:
        try:
            send_decoy(channel, clock(args.now)())
        except grpc.RpcError as exc:
            return f"failed: {exc.code().name}: {exc.details()}"
    return "sent"


def cmd_decoy(args: argparse.Namespace) -> int:
    """Sends one decoy share now: an upload the server answers like a share and stores nothing of, made of a
    made-up code and random keys, nothing of this phone (docs/privacy.md, "Decoy shares")."""
    outcome = _decoy(args)
    if outcome != "sent":
        raise CliError(f"decoy share {outcome}")
    print_json({"decoy": outcome}) if args.json else print(f"decoy share: {outcome}")
    return 0


def _sync_from_mirror(args: argparse.Namespace) -> tuple[SyncReport, int]:
    tls = Path(args.tls_dir)
    ca = tls / "ca.pem"
    trusted = TrustedKeys([load_verifying_key(tls / "signing.pub.pem")])
    client = MirrorClient(args.mirror, ssl_context(str(ca) if ca.is_file() else None))
    with _open(args) as store:
        try:
            report = sync_mirror(client, store, trusted)
        except MirrorError as exc:
            raise CliError(f"sync with the mirror {args.mirror} failed: {exc}") from None
        finally:
            client.close()
        return report, store.get_int("bytes_downloaded")


def cmd_check(args: argparse.Namespace) -> None:
    """Matches every sighting and check-in against the verified batches and scores each day and visit."""
    with _open(args) as store:
        config = config_in_force(store.get("config"))
        match_new(store, config)
        days, visits = score(store, config), venue_risks(store, config)
    if args.json:
        risks: list[DayRisk | VenueRisk] = [*days, *visits]
        print_json(sorted((r.as_json() for r in risks), key=lambda r: (r["day"], r["kind"])))
        return
    if not days and not visits:
        print("no exposure found")
    for d in days:
        counted = "" if d.counted_intervals == d.matched_intervals else f" ({d.counted_intervals} counted)"
        print(
            f"{d.day}: {TIER_WORDS[d.level]}: {d.matched_intervals} matched intervals{counted}, {d.minutes:g} min, "
            f"score {d.score:g}" + (" -> ALERT" if d.alert else "")
        )
    for v in visits:
        print(f"{v.day}: at {v.venue} during warned hours for {v.minutes:g} min" + (" -> ALERT" if v.alert else ""))


def cmd_checkin(args: argparse.Namespace) -> None:
    """Records a visit to a venue from its QR code's text, on this phone only: nothing is sent."""
    try:
        venue = parse_payload(args.payload)
    except VenueError as exc:
        raise CliError(str(exc)) from None
    entry = args.at if args.at is not None else clock(args.now)()
    exit_ = args.until if args.until is not None else entry + TYPICAL_STAY_SECONDS
    if not entry < exit_ <= entry + MAX_STAY_SECONDS:
        raise CliError(f"--until must be after --at and at most {MAX_STAY_SECONDS // 3600} hours later")
    with _open(args) as store:
        store.add_checkin(venue.venue_id, venue.name, entry, exit_)
    if args.json:
        print_json({"venue": venue.name, "entry": entry, "exit": exit_})
    else:
        print(f"checked in at {venue.name} from {iso(entry)} to {iso(exit_)}")


def cmd_share(args: argparse.Namespace) -> None:
    """Uploads this phone's expired keys of the last 14 days with a one-time code; as a case's contact (a
    RECURSIVE code), only those from the day of its exposure on."""
    now = clock(args.now)()
    with _open(args) as store:
        since = args.since
        if args.as_contact and since is None:  # from the phone's own alerts, before anything goes out
            try:
                since = exposure_day(store, config_in_force(store.get("config")))
            except NotAContact as exc:
                raise CliError(str(exc)) from None
        channel, _ = _channel(args)
        with channel:
            try:
                response = share(channel, store, args.code, now, contact_intervals=args.contact_intervals, since=since)
            except grpc.RpcError as exc:
                raise CliError(f"share failed: {exc.code().name}: {exc.details()}") from None
    if args.json:
        print_json(
            {
                "accepted": response.accepted,
                "embargoed": response.embargoed,
                "rejected": [{"index": r.index, "field": r.field, "reason": r.reason} for r in response.rejected],
            }
        )
    else:
        print(f"shared {response.accepted} keys ({response.embargoed} held back until they expire)")


def code_arg(text: str) -> str:
    """argparse type for an upload code: the service's own rule for what a code looks like (matcher.codes)."""
    if normalise(text) is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an upload code (the health authority's code, 12 letters and digits such as 7KQ4-M2XP-3HRT)"
        )
    return text


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__)
    parser.add_argument("--db", help="the phone's SQLite database")
    parser.add_argument("--now", type=time_arg, help="fixed clock: unix seconds or ISO 8601 (default: real time)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int | None], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=func.__doc__)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        sub.set_defaults(func=func)
        return sub

    def server_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--server", required=True, help="the service's public address, HOST:PORT")
        sub.add_argument(
            "--tls-dir",
            required=True,
            help="DIR/phone of `matcher certs --out DIR`: ca.pem to trust, signing.pub.pem to pin",
        )

    init = command("init", cmd_init, "create the database and today's key")
    init.add_argument(
        "--tx-power",
        type=int,
        default=DEFAULT_TX_POWER_DBM,
        help=f"this phone's calibrated TX power in dBm (default {DEFAULT_TX_POWER_DBM})",
    )
    command("broadcast", cmd_broadcast, "print what the phone advertises now")
    rpis = command("rpis", cmd_rpis, "print the RPIs of a daily key")
    rpis.add_argument("--tek", required=True, type=hex_arg(crypto.KEY_BYTES), help="the key, 32 hex digits")
    rpis.add_argument("--start", required=True, type=int, help="rolling start interval number")
    rpis.add_argument("--period", type=int, default=MAX_ROLLING_PERIOD, help="rolling period (default 144)")
    observe = command("observe", cmd_observe, "record sightings (JSON lines)")
    observe.add_argument("file", nargs="?", help="JSON lines file (default: standard input)")
    sync_cmd = command("sync", cmd_sync, "download and verify new batches")
    source = sync_cmd.add_mutually_exclusive_group(required=True)
    source.add_argument("--server", help="the service's public address, HOST:PORT")
    source.add_argument(
        "--mirror",
        metavar="URL",
        help="a static mirror's https:// URL (`matcher mirror`): sends only GETs of public files",
    )
    sync_cmd.add_argument(
        "--tls-dir",
        required=True,
        help="DIR/phone of `matcher certs --out DIR`: signing.pub.pem to pin and ca.pem to trust "
        "(a mirror without ca.pem "
        "there is trusted through the system's CAs)",
    )
    sync_cmd.add_argument("--chunk-size", type=int, default=0, help="download chunk size in bytes (default 1 MiB)")
    sync_cmd.add_argument(
        "--decoys-per-day",
        type=float,
        default=DEFAULT_DECOYS_PER_DAY,
        metavar="RATE",
        help="with --server: decoy shares a day on average, at random times (a Poisson schedule kept in the phone's "
        "database; a sync sends the one due), so that a real share does not stand out "
        f"(default {DEFAULT_DECOYS_PER_DAY}; 0: none)",
    )
    command("check", cmd_check, "match and score on the phone")
    checkin = command("checkin", cmd_checkin, "record a venue visit from its QR code")
    checkin.add_argument("payload", help="the text of the venue's QR code")
    checkin.add_argument("--at", type=time_arg, help="entry: unix seconds or ISO 8601 (default: now)")
    checkin.add_argument(
        "--until",
        type=time_arg,
        help=f"exit: unix seconds or ISO 8601 (default: {TYPICAL_STAY_SECONDS // 60} minutes after entry)",
    )
    server_options(share_cmd := command("share", cmd_share, "upload own keys with a one-time code"))
    share_cmd.add_argument("--code", required=True, type=code_arg, help="the one-time code from the health authority")
    share_cmd.add_argument(
        "--as-contact",
        action="store_true",
        help="share as a case's contact (F1, with a RECURSIVE code): only the keys from the day of the exposure on, "
        "that day taken from this phone's latest F1 alert",
    )
    share_cmd.add_argument(
        "--since",
        type=date_arg,
        metavar="YYYY-MM-DD",
        help="as a case's contact, the day of the exposure (when contact tracing, not this phone, found it)",
    )
    share_cmd.add_argument(
        "--contact-intervals",
        action="store_true",
        help="also say in which intervals this phone heard other phones: where the health authority has chosen "
        "contact-interval pruning only those are published (fewer bytes for everyone), and the service learns "
        "when you were near other phones",
    )
    server_options(command("decoy", cmd_decoy, "send one decoy share now (cover traffic; stored nowhere)"))
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    main_for(PROG, build_parser, argv)


if __name__ == "__main__":
    main()
