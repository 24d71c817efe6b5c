"""Key files a health authority writes by hand or exports from its own systems: JSON and CSV.

JSON is a list of key objects, an object with a ``"keys"`` list, or the publish request of Google's Exposure
Notifications server (``"temporaryExposureKeys"`` with base64 keys and camelCase names). CSV has a header row
naming the same fields. A key object has:

==================  =========================================================  ==========================
field               value                                                      when absent
==================  =========================================================  ==========================
key                 16 bytes as 32 hex digits or 24 base64 characters          required
rolling_start       first 10-minute interval number (unix seconds / 600)       required
rolling_period      number of intervals, 1..144                                144
report_type         CONFIRMED_TEST, CONFIRMED_CLINICAL_DIAGNOSIS, SELF_REPORT  ``--report-type``
days_since_onset    days from symptom onset to the key's day, or null          unknown
==================  =========================================================  ==========================

The ENS names (``rollingStartNumber``, ``rollingPeriod``, ``reportType``, ``daysSinceOnsetOfSymptoms``) are read
as the same fields, and ENS's ``transmissionRisk`` is ignored as GAEN deprecated it. Any other field is an error,
so that a misspelt column cannot silently become a default. A file that does not parse stops the import with one
line naming the place and the field; nothing is sent.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from matcher.model import KEY_LENGTH, MAX_ROLLING_PERIOD

from .source_keys import SINT32_MAX, SINT32_MIN, UINT32_MAX, KeyFileError, SourceKey, check_range, report_type_named

FIELD_NAMES = ("key", "rolling_start", "rolling_period", "report_type", "days_since_onset")
_ALIASES = {
    **{name: name for name in FIELD_NAMES},
    "rolling_start_interval_number": "rolling_start",
    "days_since_onset_of_symptoms": "days_since_onset",
    "rollingStartNumber": "rolling_start",
    "rollingPeriod": "rolling_period",
    "reportType": "report_type",
    "daysSinceOnsetOfSymptoms": "days_since_onset",
}
_IGNORED = frozenset({"transmissionRisk", "transmission_risk_level", "transmissionRiskLevel"})
_KEY_CONTAINERS = ("keys", "temporaryExposureKeys")
_REQUIRED = object()
_DECIMAL = re.compile(r"[+-]?[0-9]+")


def read_json_keys(path: Path) -> list[SourceKey]:
    """The keys of a JSON key file; raises KeyFileError naming the entry and field of the first problem."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"{path}: not JSON: {exc}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not JSON: the file is not UTF-8 text") from None
    container, entries = _key_list(document, path)
    keys = []
    for index, entry in enumerate(entries):
        origin = f"{container}[{index}]"
        if not isinstance(entry, dict):
            raise KeyFileError(f"{path}: {origin}: expected an object with a key, got {_json_type(entry)}")
        keys.append(_source_key(_canonical_fields(entry.items(), path, origin), path, origin, cells_are_text=False))
    return keys


def read_csv_keys(path: Path) -> list[SourceKey]:
    """The keys of a CSV file with a header row; raises KeyFileError naming the line and field of a problem."""
    keys = []
    try:
        # utf-8-sig: spreadsheets write a byte-order mark that must not become part of the first column's name.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = csv.reader(handle)
            header = next(rows, None)
            if header is None:
                raise KeyFileError(f"{path}: the file is empty; expected a header row ({', '.join(FIELD_NAMES)})")
            columns = _csv_columns(header, path)
            for cells in rows:
                origin = f"line {rows.line_num}"
                if not any(cell.strip() for cell in cells):
                    continue
                if len(cells) != len(columns):
                    raise KeyFileError(f"{path}: {origin}: {len(cells)} cells, but the header names {len(columns)}")
                fields = {name: cell.strip() for name, cell in zip(columns, cells) if name and cell.strip()}
                keys.append(_source_key(fields, path, origin, cells_are_text=True))
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not CSV: the file is not UTF-8 text") from None
    except csv.Error as exc:
        raise KeyFileError(f"{path}: not CSV: {exc}") from None
    return keys


def parse_key_text(text: str) -> bytes:
    """16 key bytes from 32 hex digits or 24 base64 characters (the two lengths cannot be confused)."""
    text = text.strip()
    try:
        if len(text) == 2 * KEY_LENGTH:
            return bytes.fromhex(text)
        if len(text) == 24:
            value = base64.b64decode(text, validate=True)
            if len(value) == KEY_LENGTH:
                return value
    except (ValueError, binascii.Error):
        pass
    raise ValueError(f"{_shown(text)} is neither {2 * KEY_LENGTH} hex digits nor 24 base64 characters of a 16-byte key")


def _key_list(document: object, path: Path) -> tuple[str, list[object]]:
    if isinstance(document, list):
        return "", document
    if isinstance(document, dict):
        for container in _KEY_CONTAINERS:
            if container in document:
                entries = document[container]
                if not isinstance(entries, list):
                    raise KeyFileError(f"{path}: {container}: expected a list of keys, got {_json_type(entries)}")
                return container, entries
    raise KeyFileError(f'{path}: expected a list of keys or an object with "keys" or "temporaryExposureKeys"')


def _canonical_fields(items: Iterable[tuple[str, object]], path: Path, origin: str) -> dict[str, object]:
    fields: dict[str, object] = {}
    for name, value in items:
        if name in _IGNORED:
            continue
        canonical = _ALIASES.get(name)
        if canonical is None:
            raise KeyFileError(f"{path}: {origin}: unknown field {name!r} (expected {', '.join(FIELD_NAMES)})")
        if canonical in fields:
            raise KeyFileError(f"{path}: {origin}: {canonical} is given twice")
        if value is not None:
            fields[canonical] = value
    return fields


def _csv_columns(header: list[str], path: Path) -> list[str]:
    """The canonical field of each column; "" for a column that is ignored."""
    columns = []
    for cell in header:
        name = cell.strip()
        if name in _IGNORED:
            columns.append("")
            continue
        canonical = _ALIASES.get(name)
        if canonical is None:
            raise KeyFileError(f"{path}: line 1: unknown column {name!r} (expected {', '.join(FIELD_NAMES)})")
        if canonical in columns:
            raise KeyFileError(f"{path}: line 1: column {canonical} is given twice")
        columns.append(canonical)
    for required in ("key", "rolling_start"):
        if required not in columns:
            raise KeyFileError(f"{path}: line 1: missing column {required!r} (the header row names the columns)")
    return columns


def _source_key(fields: Mapping[str, object], path: Path, origin: str, *, cells_are_text: bool) -> SourceKey:
    """One SourceKey from canonical fields; every problem names the file, the place and the field."""

    def read(name: str, parse: Callable[[object], Any], default: Any = _REQUIRED) -> Any:
        try:
            if name not in fields:
                if default is _REQUIRED:
                    raise ValueError("is missing")
                return default
            return parse(fields[name])
        except ValueError as exc:
            raise KeyFileError(f"{path}: {origin}: {name}: {exc}") from None

    def integer(low: int, high: int, what: str) -> Callable[[object], int]:
        return lambda value: check_range(_integer(value, cells_are_text), low, high, what)

    return SourceKey(
        origin=origin,
        key_data=read("key", lambda value: parse_key_text(_text(value, "hex or base64"))),
        rolling_start=read("rolling_start", integer(0, UINT32_MAX, "uint32")),
        rolling_period=read("rolling_period", integer(0, UINT32_MAX, "uint32"), MAX_ROLLING_PERIOD),
        report_type=read("report_type", lambda value: report_type_named(_text(value, "a name")), None),
        days_since_onset=read("days_since_onset", integer(SINT32_MIN, SINT32_MAX, "sint32"), None),
    )


def _text(value: object, expected: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text ({expected}), got {_json_type(value)}")
    return value


def _integer(value: object, cells_are_text: bool) -> int:
    if cells_are_text and isinstance(value, str):
        # Plain decimal digits only: Python's int() would also take "1_000" or full-width digits.
        if not _DECIMAL.fullmatch(value):
            raise ValueError(f"{_shown(value)} is not an integer")
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"expected an integer, got {_json_type(value)}")


def _json_type(value: object) -> str:
    if isinstance(value, str):
        return f"the text {_shown(value)}"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return "a list" if isinstance(value, list) else "an object"


def _shown(text: str, limit: int = 40) -> str:
    """A value quoted for an error message, cut short so that one line stays one line."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
