"""``matcher-sim``: a simulated population of phones, contacts and cases, run against the real service.

People meet at home, at work or school and by chance; their phones record each other's Bluetooth identifiers;
some get infected, some of those are diagnosed and upload their keys (with a one-time code, or pushed by the
health authority). Each simulated morning `matcher serve` runs with the simulated clock, `matcher publish` cuts a
batch, and every phone syncs over TLS and checks. People whose phone alerts at F1 (near a case) are designated by
the authority, and some upload as a case's contact, so that their own contacts are warned at F2. The report
compares the phones' alerts with the ground truth: recall and false alarms for F1 and F2, bytes per case and per
phone with and without F2 (next to GAEN's key files), and time. People also visit shops, restaurants and offices,
where some check in by QR code and the air is shared: the authority warns the venues a case checked in at, and
the report gives venue recall next to Bluetooth's.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from clients.ha.push import PushError
from matcher.cli_support import CliError, Parser, bounded_int, main_for, print_json, time_arg
from matcher.clock import iso

from .params import Params
from .phones import DEFAULT_WORKERS, ShardError
from .render import plots, text_report
from .report import build_report, write_json
from .run import Settings, SimulationError, simulate
from .service import ServiceError

PROG = "matcher-sim"
DEFAULT_START = "2026-03-02"  # a Monday
MAX_PEOPLE = 100_000
MAX_DAYS = 60


class Bars:
    """A progress bar per simulated day (phones synced and checked), on a terminal."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        )
        self.task: TaskID | None = None
        self.label = ""

    def begin(self, day: int, label: str, phones: int) -> None:
        self.label = label
        self.task = self.progress.add_task(label, total=phones)

    def advance(self, phones: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, phones)

    def end(self, day: int, summary: str) -> None:
        # A finished day becomes a plain line above the bars: its summary beside a bar would run past 80 columns,
        # where a terminal cuts it.
        self.progress.console.print(f"{self.label}: {summary}", highlight=False)
        if self.task is not None:
            self.progress.remove_task(self.task)


class Lines:
    """One line per simulated day, where a progress bar cannot be drawn (a log, a pipe)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.label = ""

    def begin(self, day: int, label: str, phones: int) -> None:
        self.label = label

    def advance(self, phones: int) -> None:
        pass

    def end(self, day: int, summary: str) -> None:
        self.console.print(f"{self.label}: {summary}", highlight=False)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be 0..1, got {value}")
    return value


def run_simulation(args: argparse.Namespace) -> int:
    """Runs the simulation and prints the report."""
    params = Params() if args.infected is None else replace(Params(), infected_share=args.infected)
    if args.contact_share is not None:
        params = replace(params, contact_share=args.contact_share)
    if args.checkin_share is not None:
        params = replace(params, checkin_share=args.checkin_share)
    if args.contact_intervals:
        params = replace(params, contact_intervals=True)
    settings = Settings(
        people=args.people,
        days=args.days,
        start=dt.date.fromisoformat(iso(args.start)[:10]),
        seed=args.seed,
        store=args.store,
        workers=args.workers,
        params=params,
    )
    report_dir = Path(args.report) if args.report else None
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
    errors = Console(stderr=True)
    observer = None if args.quiet else Bars(errors) if errors.is_terminal else Lines(errors)
    try:
        if isinstance(observer, Bars):
            with observer.progress:
                outcome = simulate(settings, observer)
        else:
            outcome = simulate(settings, observer)
    except (ServiceError, ShardError, SimulationError, PushError) as exc:
        raise CliError(str(exc)) from None
    except grpc.RpcError as exc:
        raise CliError(f"a call to the service failed: {exc.code().name}: {exc.details()}") from None
    report = build_report(outcome)
    if report_dir is not None:
        write_json(report, report_dir / "report.json")
        plots(report, report_dir)
    if args.json:
        print_json(report)
    else:
        output = Console()
        if not output.is_terminal:
            output = Console(width=100)  # a file or a pipe: wide enough for the tables, the same every time
        text_report(report, output)
        if report_dir is not None:
            print(
                f"report: {report_dir / 'report.json'} and {', '.join(str(p) for p in sorted(report_dir.glob('*.png')))}"
            )
    problems = report["integrity"]
    return 1 if problems["phones_refusing_a_batch"] or problems["downloads_interrupted"] else 0


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--people",
        type=bounded_int(10, MAX_PEOPLE),
        required=True,
        help=f"population size, 10..{MAX_PEOPLE:,}; every person has a phone",
    )
    parser.add_argument("--days", type=bounded_int(1, MAX_DAYS), required=True, help=f"simulated days, 1..{MAX_DAYS}")
    parser.add_argument(
        "--store",
        help="the service's store: sqlite:PATH or redis://HOST:PORT/DB, empty "
        "(default: a fresh SQLite file in a temporary folder)",
    )
    parser.add_argument("--report", metavar="DIR", help="write report.json and PNG plots into DIR (created if missing)")
    parser.add_argument(
        "--start",
        "--now",
        dest="start",
        type=time_arg,
        default=time_arg(DEFAULT_START),
        help=f"the first simulated day, a date or time (UTC; default {DEFAULT_START})",
    )
    parser.add_argument(
        "--seed",
        type=bounded_int(0, 2**63 - 1),
        default=1,
        help="random seed of the world (people, encounters, infections); default 1",
    )
    parser.add_argument(
        "--infected",
        type=_share,
        metavar="SHARE",
        help=f"share of people whose symptoms start during the run (default {Params().infected_share})",
    )
    parser.add_argument(
        "--contact-share",
        type=_share,
        metavar="SHARE",
        help="share of the people designated F1 after a new F1 alert who upload as a case's contact "
        f"(RECURSIVE), so that their contacts are warned at F2; 0 turns F2 off "
        f"(default {Params().contact_share})",
    )
    parser.add_argument(
        "--checkin-share",
        type=_share,
        metavar="SHARE",
        help="share of people who scan a venue's QR code at every visit (shops, restaurants, offices); "
        f"0 turns venue warnings off (default {Params().checkin_share})",
    )
    parser.add_argument(
        "--workers",
        type=bounded_int(0, 32),
        default=DEFAULT_WORKERS,
        help=f"phone worker processes (default {DEFAULT_WORKERS}; 0 runs the phones in this process)",
    )
    parser.add_argument(
        "--contact-intervals",
        action="store_true",
        help="contact-interval pruning: sharing phones say in which intervals they heard others, and "
        "the authority publishes only those (off by default, as in the service)",
    )
    parser.add_argument("--json", action="store_true", help="print report.json's object instead of the text report")
    parser.add_argument("--quiet", action="store_true", help="no progress on standard error")
    parser.set_defaults(func=run_simulation)
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    main_for(PROG, build_parser, argv)


if __name__ == "__main__":
    main()
