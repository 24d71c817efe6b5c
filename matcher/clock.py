"""Reading times given on command lines, and the clock that commands use.

Library code never asks for the time; it is passed in as unix seconds. Commands take ``--now`` (unix seconds or
ISO 8601) to run against any date, and otherwise read the real clock here.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

Clock = Callable[[], int]


def parse_time(text: str) -> int:
    """Unix seconds from ``"1700000000"``, ``"2020-04-02"`` or ``"2020-04-02T10:00:00+02:00"``.

    An ISO time without an offset is read as UTC (never as the machine's local time).
    """
    text = text.strip()
    try:
        return int(float(text)) if text.lstrip("-").replace(".", "", 1).isdigit() else _parse_iso(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither unix seconds nor an ISO 8601 time (e.g. 2020-04-02T10:00:00Z)") from None


def _parse_iso(text: str) -> int:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp())


def clock(fixed: int | None = None) -> Clock:
    """A fixed clock when ``fixed`` is given (``--now``), else the real one."""
    if fixed is not None:
        return lambda: fixed
    return lambda: int(time.time())


def iso(unix_seconds: int) -> str:
    """Unix seconds as an ISO 8601 UTC time, for output."""
    return dt.datetime.fromtimestamp(unix_seconds, dt.timezone.utc).isoformat().replace("+00:00", "Z")
