"""Reading times given on command lines, and the clock that commands use.

Library code never asks for the time; it is passed in as unix seconds. Commands take ``--now`` (unix seconds or
ISO 8601) to run against any date, and otherwise read the real clock here.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

Clock = Callable[[], int]

# The times any command accepts: from the epoch to 2100. Interval numbers (time / 600) are uint32 on the wire and
# Python's datetime stops at year 9999, so a time outside a sane range would fail later, far from its cause.
MIN_TIME = 0
MAX_TIME = 4_102_444_800  # 2100-01-01T00:00:00Z


def check_time(value: int, what: str = "") -> int:
    """``value`` if it is a time between 1970 and 2100 in unix seconds; ValueError naming ``what`` otherwise."""
    if not MIN_TIME <= value < MAX_TIME:
        raise ValueError(
            f"{what or value} is out of range: a time is unix seconds from {MIN_TIME} (1970) to {MAX_TIME} (2100)"
        )
    return value


def parse_time(text: str) -> int:
    """Unix seconds from ``"1700000000"``, ``"2020-04-02"`` or ``"2020-04-02T10:00:00+02:00"``.

    An ISO time without an offset is read as UTC (never as the machine's local time). Times outside
    1970..2100 are refused (:func:`check_time`).
    """
    text = text.strip()
    try:
        if text.lstrip("-").isdigit():
            value = int(text)
        elif text.lstrip("-").replace(".", "", 1).isdigit():
            value = int(float(text))
        else:
            value = _parse_iso(text)
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is neither unix seconds nor an ISO 8601 time (e.g. 2020-04-02T10:00:00Z)") from None
    return check_time(value, repr(text))


def _parse_iso(text: str) -> int:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def clock(fixed: int | None = None) -> Clock:
    """A fixed clock when ``fixed`` is given (``--now``), else the real one."""
    if fixed is not None:
        return lambda: fixed
    return lambda: int(time.time())


def iso(unix_seconds: int) -> str:
    """Unix seconds as an ISO 8601 UTC time, for output."""
    return dt.datetime.fromtimestamp(unix_seconds, dt.UTC).isoformat().replace("+00:00", "Z")
