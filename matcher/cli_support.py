"""What every command line of the project shares: one-line errors, exit codes and ``--json`` output.

A command's function raises :class:`CliError` (or a MatcherError, or ValueError from parsing) for anything the
user can fix; :func:`run` prints ``<prog>: error: <message>`` on one line and exits 1 (2 for bad usage). Only a
bug prints a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .clock import parse_time
from .errors import MatcherError

EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A problem the user can fix, reported as one line."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def time_arg(text: str) -> int:
    """argparse type for ``--now``: unix seconds or ISO 8601."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def date_arg(text: str) -> dt.date:
    """argparse type for a UTC day, YYYY-MM-DD."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in the form YYYY-MM-DD") from None


def hex_arg(length: int) -> Callable[[str], bytes]:
    """argparse type for a hex string of exactly ``length`` bytes."""

    def parse(text: str) -> bytes:
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not hexadecimal") from None
        if len(value) != length:
            raise argparse.ArgumentTypeError(f"expected {length} bytes ({2 * length} hex digits), got {len(value)}")
        return value

    return parse


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in ``low..high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {value}")
        return value

    return parse


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=None, separators=(",", ":"))
    sys.stdout.write("\n")


def run(prog: str, command: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> NoReturn:
    """Runs a parsed command, turning the user's mistakes into one line on stderr and a non-zero exit."""
    try:
        status = command(args)
    except (CliError, MatcherError, ValueError, OSError) as exc:
        message = getattr(exc, "detail", None) or (exc.message if isinstance(exc, MatcherError) else str(exc))
        if isinstance(exc, OSError) and exc.filename:
            message = f"{exc.filename}: {exc.strerror}"
        sys.stderr.write(f"{prog}: error: {message}\n")
        sys.exit(EXIT_FAILURE)
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        sys.exit(130)
    sys.exit(status or 0)


def main_for(prog: str, build_parser: Callable[[], Parser], argv: Sequence[str] | None) -> NoReturn:
    """Parses ``argv`` with the command's parser and runs the chosen sub-command (``args.func``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        sys.exit(EXIT_USAGE)
    run(prog, args.func, args)
