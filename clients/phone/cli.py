"""``matcher-phone``: a phone's side of exposure notification, from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

import numpy as np

from matcher import crypto
from matcher.cli_support import Parser, hex_arg, main_for, print_json
from matcher.model import MAX_ROLLING_PERIOD, MIN_ROLLING_PERIOD

PROG = "matcher-phone"


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


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__)
    parser.add_argument("--db", help="the phone's SQLite database")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    rpis = commands.add_parser("rpis", help="print the RPIs of a daily key", description=cmd_rpis.__doc__)
    rpis.add_argument("--tek", required=True, type=hex_arg(crypto.KEY_BYTES), help="the key, 32 hex digits")
    rpis.add_argument("--start", required=True, type=int, help="rolling start interval number")
    rpis.add_argument("--period", type=int, default=MAX_ROLLING_PERIOD, help="rolling period (default 144)")
    rpis.add_argument("--json", action="store_true", help="a JSON list of {interval, rpi}")
    rpis.set_defaults(func=cmd_rpis)
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    main_for(PROG, build_parser, argv)


if __name__ == "__main__":
    main()
