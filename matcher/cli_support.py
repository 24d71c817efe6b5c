"""What every command line of the project shares: one-line errors, exit codes and ``--json`` output.

A command's function raises :class:`CliError` (or a MatcherError, or ValueError from parsing) for anything the
user can fix; :func:`run` prints ``<prog>: error: <message>`` on one line and exits 1 (2 for bad usage). Only a
bug prints a traceback. When the command line asked for machine output (``--json``, ``--output json``), an error
also prints one JSON object on stdout, ``{"error": MESSAGE, "exit": STATUS}``: a script always gets the one object
the docs promise.

The rules that several commands share live here once: times (:func:`time_arg`), regions (:func:`region_arg`) and
reading a file the user named (:func:`read_text`, :func:`read_bytes`), each failure one line naming the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .clock import parse_time
from .errors import MatcherError
from .validation import check_region

EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A problem the user can fix, reported as one line."""


# Options for every client channel the command lines open. grpcio gives a connection attempt (TCP and the TLS
# handshake) at least min_reconnect_backoff, 20 s by default: a port that accepts but does not speak TLS gRPC (a
# Redis, a half-dead process) made a command hang that long before its one-line error. 5 s is ample on any network
# a phone or an authority syncs over, and a failed attempt is still retried where the command retries.
CONNECT_SECONDS = 5
CHANNEL_OPTIONS = [("grpc.min_reconnect_backoff_ms", CONNECT_SECONDS * 1000)]

# The command line being run, for telling whether a usage error must also be a JSON object (main_for sets it).
_argv: list[str] = []


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        line = f"{message} (see --help)"
        if _wants_json(self, _argv):
            print_json({"error": line, "exit": EXIT_USAGE})
        self.exit(EXIT_USAGE, f"{self.prog}: error: {line}\n")


def _json_flag(parser: argparse.ArgumentParser) -> bool:
    """Whether ``parser``'s ``--json`` asks for machine output (in matcher-ha push it names an input file)."""
    action = parser._option_string_actions.get("--json")
    return action is not None and action.nargs == 0


def _wants_json(parser: argparse.ArgumentParser, argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON output, judged from its words (the parse itself failed)."""
    for index, word in enumerate(argv):
        if word == "--output=json" or (word == "--output" and argv[index + 1 : index + 2] == ["json"]):
            return True
    if "--json" not in argv:
        return False
    chosen = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen += [sub for name, sub in action.choices.items() if name in argv]
    return any(_json_flag(p) for p in chosen)


def time_arg(text: str) -> int:
    """argparse type for ``--now`` and other times: unix seconds or ISO 8601, 1970..2100 (clock.parse_time)."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def region_arg(text: str) -> str:
    """argparse type for a region: an ISO 3166-1 alpha-2 code, the server's own rule (validation.check_region)."""
    problems = check_region(text)
    if problems or not text:
        raise argparse.ArgumentTypeError(problems[0].description if problems else "a region is a code such as 'VN'")
    return text


def optional_region_arg(text: str) -> str:
    """:func:`region_arg`, where an empty value means "the default" (the authority's region)."""
    return text and region_arg(text)


def read_bytes(path: str | Path, what: str) -> bytes:
    """A file the user named; one line naming it when it is missing, a folder or unreadable."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path}: no such file (expected {what})") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a folder, not {what}") from None
    except PermissionError:
        raise CliError(f"{path}: not readable (permission denied)") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot be read: {exc.strerror}") from None


def read_text(path: str | Path, what: str) -> str:
    """:func:`read_bytes` as UTF-8 text; a binary file is one line naming it, not a codec error."""
    return decode_text(read_bytes(path, what), str(path), what)


def decode_text(data: bytes, name: str, what: str) -> str:
    """UTF-8 text from ``name`` (a file, standard input); a binary one is one line naming it, not a codec error."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{name}: not text (byte {exc.start} is not UTF-8); expected {what}") from None


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


def wants_json(args: argparse.Namespace) -> bool:
    """Whether a parsed command line asked for machine output (``--json`` as a flag, or ``--output json``)."""
    return getattr(args, "json", None) is True or getattr(args, "output", None) == "json"


def fail(prog: str, message: str, status: int, *, as_json: bool) -> NoReturn:
    """The one way a command fails: one line on stderr and, for machine output, one JSON object on stdout."""
    message = " ".join(message.split())  # one line, whatever a library put into its message
    if as_json:
        print_json({"error": message, "exit": status})
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.exit(status)


def run(prog: str, command: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> NoReturn:
    """Runs a parsed command, turning the user's mistakes into one line on stderr and a non-zero exit."""
    try:
        status = command(args)
    except (CliError, MatcherError, ValueError, OSError) as exc:
        message = getattr(exc, "detail", None) or (exc.message if isinstance(exc, MatcherError) else str(exc))
        if isinstance(exc, OSError) and exc.filename:
            message = f"{exc.filename}: {exc.strerror}"
        fail(prog, message, EXIT_FAILURE, as_json=wants_json(args))
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        sys.exit(130)
    sys.exit(status or 0)


def main_for(prog: str, build_parser: Callable[[], Parser], argv: Sequence[str] | None) -> NoReturn:
    """Parses ``argv`` with the command's parser and runs the chosen sub-command (``args.func``)."""
    _argv[:] = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        sys.exit(EXIT_USAGE)
    run(prog, args.func, args)
