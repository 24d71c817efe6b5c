"""JSON and CSV key files: every accepted form reads as the same keys, every malformed one is one line."""

from __future__ import annotations

import base64
import json

import pytest

from clients.ha.key_files import parse_key_text, read_csv_keys, read_json_keys
from clients.ha.source_keys import KeyFileError, SourceKey
from matcher.model import ReportType
from tests.ha.conftest import write

KEY = bytes.fromhex("0123456789abcdef0123456789abcdef")
KEY_B64 = base64.b64encode(KEY).decode()


def test_a_key_reads_from_32_hex_digits_or_24_base64_characters():
    assert parse_key_text(KEY.hex()) == KEY
    assert parse_key_text(KEY.hex().upper()) == KEY
    assert parse_key_text(KEY_B64) == KEY


@pytest.mark.parametrize("text", ["0123", KEY.hex() + "00", "zz" * 16, KEY_B64[:-2] + "!!", ""])
def test_anything_else_is_not_a_key(text):
    with pytest.raises(ValueError, match="neither 32 hex digits nor 24 base64 characters"):
        parse_key_text(text)


def test_a_json_list_reads_with_defaults_for_what_it_leaves_out(tmp_path):
    path = write(tmp_path / "k.json", json.dumps([
        {"key": KEY.hex(), "rolling_start": 2650000},
        {"key": KEY_B64, "rolling_start": 2650144, "rolling_period": 70, "report_type": "self_report",
         "days_since_onset": -2},
        {"key": KEY.hex(), "rolling_start": 1, "days_since_onset": None},
    ]))  # fmt: skip
    assert read_json_keys(path) == [
        SourceKey("[0]", KEY, 2650000, 144, None, None),
        SourceKey("[1]", KEY, 2650144, 70, ReportType.SELF_REPORT, -2),
        SourceKey("[2]", KEY, 1, 144, None, None),
    ]


def test_a_json_object_with_keys_reads_like_a_list(tmp_path):
    path = write(tmp_path / "k.json", json.dumps({"keys": [{"key": KEY.hex(), "rolling_start": 5}]}))
    assert read_json_keys(path) == [SourceKey("keys[0]", KEY, 5)]


def test_an_ens_publish_request_reads_with_its_camel_case_names(tmp_path):
    request = {
        "temporaryExposureKeys": [{"key": KEY_B64, "rollingStartNumber": 2650000, "rollingPeriod": 12, "transmissionRisk": 4}],
        "healthAuthorityID": "ignored: only the keys are read",
    }  # fmt: skip
    path = write(tmp_path / "publish.json", json.dumps(request))
    assert read_json_keys(path) == [SourceKey("temporaryExposureKeys[0]", KEY, 2650000, 12)]


def test_a_csv_file_reads_by_its_header_and_names_keys_by_line(tmp_path):
    path = write(tmp_path / "k.csv", (
        "\ufeffkey,rolling_start,rolling_period,report_type,days_since_onset\n"
        f"{KEY.hex()},2650000,,,\n"
        "\n"
        f"{KEY_B64},2650144,70,CONFIRMED_CLINICAL_DIAGNOSIS,3\n"
    ))  # fmt: skip
    assert read_csv_keys(path) == [
        SourceKey("line 2", KEY, 2650000, 144, None, None),
        SourceKey("line 4", KEY, 2650144, 70, ReportType.CONFIRMED_CLINICAL_DIAGNOSIS, 3),
    ]


def test_csv_columns_may_come_in_any_order_and_optional_ones_may_be_left_out(tmp_path):
    path = write(tmp_path / "k.csv", f"rolling_start,key\n2650000,{KEY.hex()}\n")
    assert read_csv_keys(path) == [SourceKey("line 2", KEY, 2650000)]


def test_values_outside_the_rules_still_read_so_that_validation_can_name_them(tmp_path):
    # A period of 200 or an onset of 40 days is a rejected key (with its reason), not an unreadable file.
    path = write(tmp_path / "k.json", json.dumps([{"key": KEY.hex(), "rolling_start": 1, "rolling_period": 200,
                                                    "report_type": "REVOKED", "days_since_onset": 40}]))  # fmt: skip
    assert read_json_keys(path) == [SourceKey("[0]", KEY, 1, 200, ReportType.REVOKED, 40)]


JSON_PROBLEMS = [
    ("not json", "k.json: not JSON: Expecting value"),
    ('{"entries": []}', 'k.json: expected a list of keys or an object with "keys" or "temporaryExposureKeys"'),
    ('{"keys": {"key": 1}}', "k.json: keys: expected a list of keys, got an object"),
    ("[3]", "k.json: [0]: expected an object with a key, got the number 3"),
    ('[{"rolling_start": 1}]', "k.json: [0]: key: is missing"),
    (f'[{{"key": "{KEY.hex()}"}}]', "k.json: [0]: rolling_start: is missing"),
    ('[{"key": "abc", "rolling_start": 1}]', "k.json: [0]: key: 'abc' is neither 32 hex digits nor 24 base64"),
    ('[{"key": 12, "rolling_start": 1}]', "k.json: [0]: key: expected text (hex or base64), got the number 12"),
    (f'[{{"key": "{KEY.hex()}", "rolling_start": "12"}}]', "k.json: [0]: rolling_start: expected an integer, got the text '12'"),
    (f'[{{"key": "{KEY.hex()}", "rolling_start": 1.5}}]', "k.json: [0]: rolling_start: expected an integer, got the number 1.5"),
    (f'[{{"key": "{KEY.hex()}", "rolling_start": true}}]', "k.json: [0]: rolling_start: expected an integer, got true"),
    (f'[{{"key": "{KEY.hex()}", "rolling_start": -1}}]', "k.json: [0]: rolling_start: -1 does not fit the field (uint32"),
    (f'[{{"key": "{KEY.hex()}", "rolling_start": 1, "report_type": "POSITIVE"}}]', "k.json: [0]: report_type: 'POSITIVE' is not a report type"),
    (f'[{{"key": "{KEY.hex()}", "rolling_start": 1, "rolling_perod": 3}}]', "k.json: [0]: unknown field 'rolling_perod'"),
    (f'[{{"key": "{KEY.hex()}", "rolling_start": 1, "rollingStartNumber": 3}}]', "k.json: [0]: rolling_start is given twice"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), JSON_PROBLEMS)
def test_a_malformed_json_file_is_refused_naming_the_entry_and_field(tmp_path, text, message):
    path = write(tmp_path / "k.json", text)
    with pytest.raises(KeyFileError) as refused:
        read_json_keys(path)
    assert str(refused.value).startswith(str(tmp_path / message)), str(refused.value)
    assert "\n" not in str(refused.value)


CSV_PROBLEMS = [
    ("", "k.csv: the file is empty; expected a header row"),
    ("key,rolling_period\n", "k.csv: line 1: missing column 'rolling_start'"),
    ("key,rolling_start,person\n", "k.csv: line 1: unknown column 'person'"),
    (f"key,rolling_start\n{KEY.hex()},1\n{KEY.hex()}\n", "k.csv: line 3: 1 cells, but the header names 2"),
    (f"key,rolling_start\n{KEY.hex()},1\nnothex,2\n", "k.csv: line 3: key: 'nothex' is neither"),
    (f"key,rolling_start\n{KEY.hex()},twelve\n", "k.csv: line 2: rolling_start: 'twelve' is not an integer"),
    ("key,rolling_start\n,1\n", "k.csv: line 2: key: is missing"),
    (f"key,rolling_start,days_since_onset\n{KEY.hex()},1,-2.5\n", "k.csv: line 2: days_since_onset: '-2.5' is not an integer"),
    (f"key,rolling_start\n{KEY.hex()},2_650_000\n", "k.csv: line 2: rolling_start: '2_650_000' is not an integer"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), CSV_PROBLEMS)
def test_a_malformed_csv_file_is_refused_naming_the_line_and_field(tmp_path, text, message):
    path = write(tmp_path / "k.csv", text)
    with pytest.raises(KeyFileError) as refused:
        read_csv_keys(path)
    assert str(refused.value).startswith(str(tmp_path / message)), str(refused.value)
    assert "\n" not in str(refused.value)


def test_binary_junk_is_refused_as_not_text(tmp_path):
    path = tmp_path / "k.csv"
    path.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(KeyFileError, match="not UTF-8 text"):
        read_csv_keys(path)
    with pytest.raises(KeyFileError, match="not UTF-8 text"):
        read_json_keys(path)
