"""`matcher-ha`, run as a health authority's engineer runs it."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from google.protobuf import json_format

from clients.ha.gaen_export import read_export
from matcher.clock import parse_time
from matcher.exposure_config import default_config
from matcher.signing import generate_signing_key, write_signing_key
from tests.ha.conftest import (
    ENS_BOTH_VALID,
    ENS_ONE_TOO_OLD,
    ENS_PEM,
    ENS_ZIP,
    INTERNALS_ALL_VALID,
    INTERNALS_FIRST_TWO_DAYS,
    INTERNALS_PEM,
    INTERNALS_TWO_DAYS_LATER,
    INTERNALS_ZIP,
    authority_dir,
    write,
)

DRY_RUN_FIELDS = {"parsed", "valid", "rejected", "keys"}
KEY_FIELDS = {"key", "rolling_start", "rolling_period", "report_type", "days_since_onset"}
NOW = 2650300 * 600  # 2020-05-22T20:00Z
KEY_A, KEY_B, KEY_C = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210", "00" * 15 + "aa"


def ha(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clients.ha.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_json_object(result: subprocess.CompletedProcess) -> dict:
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1, result.stdout
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


def assert_one_line_error(result: subprocess.CompletedProcess, exit_code: int = 1) -> str:
    """One line on stderr; on stdout nothing, or with --output json the one object naming the same error."""
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("matcher-ha")
    if "json" in result.args:
        assert one_json_object(result) == {"error": result.stderr.strip().split("error: ", 1)[1], "exit": exit_code}
    else:
        assert result.stdout == ""
    return result.stderr.strip()


# --- dry runs on the GAEN samples ----------------------------------------------------------------------------


def test_a_dry_run_of_the_internals_sample_finds_all_140_keys_valid_just_after_the_last_one_ends():
    result = ha("push", "--export", INTERNALS_ZIP, "--verify-key", INTERNALS_PEM, "--dry-run",
                "--now", INTERNALS_ALL_VALID, "--output", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = one_json_object(result)
    assert set(report) == DRY_RUN_FIELDS
    assert (report["parsed"], report["valid"], report["rejected"]) == (140, 140, [])
    assert all(set(key) == KEY_FIELDS for key in report["keys"])
    assert {(k["rolling_period"], k["report_type"], k["days_since_onset"]) for k in report["keys"]} == {
        (144, "CONFIRMED_TEST", None)
    }
    expected = [(k.key_data.hex(), k.rolling_start) for k in read_export(INTERNALS_ZIP).source_keys()]
    assert [(k["key"], k["rolling_start"]) for k in report["keys"]] == expected


def test_two_days_later_the_dry_run_rejects_exactly_the_keys_of_the_first_two_days():
    result = ha("push", "--export", INTERNALS_ZIP, "--dry-run", "--now", INTERNALS_TWO_DAYS_LATER, "--output", "json")
    assert result.returncode == 3, result.stderr  # done, with rejected keys
    report = one_json_object(result)
    keys = read_export(INTERNALS_ZIP).source_keys()
    too_old = {k.key_data.hex() for k in keys if k.rolling_start in INTERNALS_FIRST_TWO_DAYS}
    assert (report["parsed"], report["valid"], len(too_old)) == (140, 120, 20)
    assert {r["key"] for r in report["rejected"]} == too_old
    assert all(set(r) == {"key", "reason"} for r in report["rejected"])
    assert report["rejected"][0]["reason"].startswith("rolling_start_interval_number: expired more than 14 days ago")
    assert not too_old & {k["key"] for k in report["keys"]}


def test_a_dry_run_of_the_ens_example_splits_where_the_longer_key_leaves_retention():
    both = one_json_object(ha("push", "--export", ENS_ZIP, "--verify-key", ENS_PEM, "--dry-run",
                              "--now", ENS_BOTH_VALID, "--output", "json"))  # fmt: skip
    assert [(k["rolling_start"], k["rolling_period"]) for k in both["keys"]] == [(2649980, 1), (2649866, 114)]
    result = ha("push", "--export", ENS_ZIP, "--dry-run", "--now", ENS_ONE_TOO_OLD, "--output", "json")
    assert result.returncode == 3
    one = one_json_object(result)
    assert (one["parsed"], one["valid"]) == (2, 1)
    assert [k["rolling_period"] for k in one["keys"]] == [1]
    assert [r["key"] for r in one["rejected"]] == ["2b63053ac483238de176169e861f3dcd"]


def test_the_default_report_type_applies_to_keys_whose_file_gives_none():
    report = one_json_object(ha("push", "--export", ENS_ZIP, "--dry-run", "--now", ENS_BOTH_VALID,
                                "--report-type", "self_report", "--output", "json"))  # fmt: skip
    assert {k["report_type"] for k in report["keys"]} == {"SELF_REPORT"}


def test_the_text_dry_run_says_what_would_be_sent_and_that_the_signature_verified():
    result = ha("push", "--export", INTERNALS_ZIP, "--verify-key", INTERNALS_PEM, "--dry-run", "--now",
                INTERNALS_TWO_DAYS_LATER)  # fmt: skip
    lines = result.stdout.splitlines()
    assert (
        lines[0] == "140 keys read, 120 valid, 20 rejected (checked with the server's rules as of 2020-07-03T00:00:00Z)"
    )
    assert lines[1] == f"export.sig verifies with {INTERNALS_PEM} (key id '310', version 'v1')"
    assert lines[2] == "would send 120 keys in 4 submissions of at most 30"
    assert lines[3] == "rejected:" and lines[4].startswith("  keys[0]: rolling_start_interval_number: expired")
    assert sum(line.startswith("  keys[") for line in lines) == 20
    assert len(lines) == 3 + 1 + 20 + 2 + 120


# --- JSON and CSV inputs -------------------------------------------------------------------------------------


def test_json_and_csv_files_with_the_same_keys_give_the_same_dry_run(tmp_path):
    start = NOW // 600 - 300
    json_file = write(tmp_path / "keys.json", json.dumps({"keys": [
        {"key": KEY_A, "rolling_start": start, "rolling_period": 144, "report_type": "CONFIRMED_TEST", "days_since_onset": 1},
        {"key": KEY_B, "rolling_start": start - 144},
    ]}))  # fmt: skip
    csv_file = write(tmp_path / "keys.csv", (
        "key,rolling_start,rolling_period,report_type,days_since_onset\n"
        f"{KEY_A},{start},144,CONFIRMED_TEST,1\n"
        f"{KEY_B},{start - 144},,,\n"
    ))  # fmt: skip
    outputs = [ha("push", flag, path, "--dry-run", "--now", str(NOW), "--output", "json")
               for flag, path in (("--json", json_file), ("--csv", csv_file))]  # fmt: skip
    assert [result.returncode for result in outputs] == [0, 0]
    assert outputs[0].stdout == outputs[1].stdout
    assert one_json_object(outputs[0])["keys"] == [
        {"key": KEY_A, "rolling_start": start, "rolling_period": 144, "report_type": "CONFIRMED_TEST", "days_since_onset": 1},
        {"key": KEY_B, "rolling_start": start - 144, "rolling_period": 144, "report_type": "CONFIRMED_TEST", "days_since_onset": None},
    ]  # fmt: skip


def test_rejected_keys_of_a_csv_file_are_named_by_line_in_the_text_output(tmp_path):
    csv_file = write(tmp_path / "keys.csv", f"key,rolling_start,rolling_period\n{KEY_A},{NOW // 600 - 300},145\n")
    result = ha("push", "--csv", csv_file, "--dry-run", "--now", str(NOW))
    assert result.returncode == 3
    assert "  line 2: rolling_period: must be 1..144 ten-minute intervals, got 145" in result.stdout.splitlines()


def bad_inputs(tmp: Path) -> list[tuple[list[str | Path], str]]:
    """(arguments, the start of the one-line error) for each kind of bad input."""
    zip_files = {name: zipfile.ZipFile(ENS_ZIP).read(name) for name in ("export.bin", "export.sig")}

    def zipped(name: str, files: dict[str, bytes]) -> Path:
        with zipfile.ZipFile(tmp / name, "w") as archive:
            for member, data in files.items():
                archive.writestr(member, data)
        return tmp / name

    def flipped(data: bytes, position: int) -> bytes:
        return data[:position] + bytes([data[position] ^ 1]) + data[position + 1 :]

    bare = tmp / "export.bin"
    bare.write_bytes(zip_files["export.bin"])
    sig = zip_files["export.sig"]
    return [
        (["--csv", write(tmp / "a.csv", f"key,rolling_start\n{KEY_A},1\nnot-hex,2\n")], "a.csv: line 3: key: 'not-hex' is neither"),
        (["--csv", write(tmp / "b.csv", f"key,start\n{KEY_A},1\n")], "b.csv: line 1: unknown column 'start'"),
        (["--csv", write(tmp / "c.csv", f"key\n{KEY_A}\n")], "c.csv: line 1: missing column 'rolling_start'"),
        (["--json", write(tmp / "d.json", f'[{{"key": "{KEY_A}", "rolling_start": "soon"}}]')], "d.json: [0]: rolling_start: expected an integer"),
        (["--json", write(tmp / "e.json", "{")], "e.json: not JSON"),
        (["--json", write(tmp / "f.json", "[]")], "f.json: the file holds no keys"),
        (["--json", tmp / "missing.json"], "missing.json: No such file or directory"),
        (["--export", write(tmp / "g.zip", "plain text")], "g.zip: neither a GAEN export zip nor an export.bin"),
        (["--export", zipped("h.zip", {"export.sig": sig})], "h.zip: the zip holds no export.bin"),
        (["--export", zipped("i.zip", {"export.bin": b"EK Export v9    "})], "i.zip:export.bin: the header is"),
        (["--export", zipped("j.zip", {"export.bin": zip_files["export.bin"][:-1], "export.sig": sig})], "j.zip:export.bin: the export after the header is not a valid protobuf"),
        (["--export", ENS_ZIP, "--verify-key", INTERNALS_PEM], f"{ENS_ZIP}:export.bin: export.sig does not verify with the given public key ({INTERNALS_PEM})"),
        (["--export", zipped("k.zip", {"export.bin": flipped(zip_files["export.bin"], len(zip_files["export.bin"]) - 3), "export.sig": sig}), "--verify-key", ENS_PEM], "k.zip:export.bin: export.sig does not verify"),
        (["--export", zipped("l.zip", {"export.bin": zip_files["export.bin"], "export.sig": flipped(sig, len(sig) - 4)}), "--verify-key", ENS_PEM], "l.zip:export.bin: export.sig does not verify"),
        (["--export", bare, "--verify-key", ENS_PEM], "export.bin: no export.sig to verify"),
        (["--export", ENS_ZIP, "--verify-key", write(tmp / "m.pem", "not a key")], "m.pem: not an ECDSA P-256 public key in PEM form"),
    ]  # fmt: skip


def test_every_bad_input_is_one_line_on_stderr_exit_1_and_one_json_error_on_stdout(tmp_path):
    cases = bad_inputs(tmp_path)
    for arguments, message in cases:
        result = ha("push", *arguments, "--dry-run", "--now", ENS_BOTH_VALID, "--output", "json")
        error = assert_one_line_error(result)
        assert error.startswith("matcher-ha: error: ") and message in error, (arguments, error)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--export", ENS_ZIP], "--server, --tls-dir, --authority needed to push (or use --dry-run)"),
        (["--export", ENS_ZIP, "--server", "h:1", "--tls-dir", "."], "--authority needed to push"),
        (["--json", "k.json", "--verify-key", ENS_PEM, "--dry-run"], "--verify-key verifies a GAEN export: use it with --export"),
        (["--json", "k.json", "--csv", "k.csv", "--dry-run"], "argument --csv: not allowed with argument --json"),
        (["--dry-run"], "one of the arguments --json --csv --export is required"),
        (["--export", ENS_ZIP, "--dry-run", "--report-type", "REVOKED"], "choose one of CONFIRMED_TEST"),
        (["--export", ENS_ZIP, "--dry-run", "--report-type", "RECURSIVE"], "choose one of CONFIRMED_TEST"),
        (["--export", ENS_ZIP, "--dry-run", "--now", "yesterday"], "argument --now: 'yesterday' is neither"),
        (["--export", ENS_ZIP, "--dry-run", "--region", "Vietnam"], "argument --region: 'Vietnam' is not an ISO 3166-1"),
        (["--export", ENS_ZIP, "--dry-run", "--output", "yaml"], "argument --output: invalid choice"),
    ],
)  # fmt: skip
def test_bad_usage_is_one_line_and_exit_2(arguments, message):
    error = assert_one_line_error(ha("push", *arguments), exit_code=2)
    assert error.startswith("matcher-ha push: error: ") and message in error, error


def test_help_explains_input_and_output_flags():
    result = ha("push", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--json FILE names the input; machine-readable output is --output json." in text
    assert "GAEN exports usually leave it out" in text


# --- pushing to the authority listener -----------------------------------------------------------------------


def connection(peer_address: str, tls_dir: Path, authority: str = "vn-moh") -> list[str | Path]:
    return [
        "--server",
        peer_address,
        "--tls-dir",
        authority_dir(tls_dir, authority),
        "--authority",
        authority,
        "--attempts",
        "2",
    ]


def key_file(tmp_path: Path, count: int, start: int) -> Path:
    rows = "".join(f"{(i + 1):032x},{start}\n" for i in range(count))
    return write(tmp_path / "keys.csv", "key,rolling_start\n" + rows)


def test_a_push_says_how_many_accepted_keys_will_be_published_and_why_the_others_will_not(
    peer_address, tls_dir, tmp_path
):
    start = NOW // 600 - 400
    # The default configuration gives days -14..-3 since onset no infectiousness: such keys publish nothing.
    rows = "".join(f"{i + 1:032x},{start - 144 * i},{-3 - i if i < 6 else 1}\n" for i in range(10))
    keys = write(tmp_path / "onset.csv", "key,rolling_start,days_since_onset\n" + rows)
    result = ha("push", "--csv", keys, *connection(peer_address, tls_dir), "--now", str(NOW))
    assert result.returncode == 0, result.stderr
    assert "accepted: 10 (" in result.stdout
    assert "will be published: 4; accepted but never published: 6" in result.stdout
    assert "line 2: -3 days since onset: the exposure configuration gives no infectiousness" in result.stdout


def test_a_push_sends_the_keys_and_reports_what_the_server_accepted(peer_address, peer, tls_dir, tmp_path):
    keys = key_file(tmp_path, 65, NOW // 600 - 400)
    result = ha("push", "--csv", keys, *connection(peer_address, tls_dir), "--now", str(NOW), "--output", "json")
    assert result.returncode == 0, result.stderr
    assert one_json_object(result) == {
        "parsed": 65, "valid": 65, "submissions": 3, "accepted": 65, "embargoed": 0, "replayed": 0, "rejected": [],
        "will_be_published": 65, "not_published": [],
    }  # fmt: skip
    assert len(peer.stored) == 65 and [len(call.keys) for call in peer.calls] == [30, 30, 5]

    again = ha("push", "--csv", keys, *connection(peer_address, tls_dir), "--now", str(NOW))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[:2] == [
        "65 keys read; sent 65 in 3 submissions (3 already sent before)",
        "accepted: 65 (0 of them embargoed until they expire)",
    ]
    assert len(peer.stored) == 65


def test_keys_the_server_rejects_are_traced_back_to_their_line(peer_address, peer, tls_dir, tmp_path):
    # Checked locally as of a day earlier than the server's clock: the server finds the oldest key too old.
    now_here = NOW - 86400
    keys = write(tmp_path / "keys.csv", (
        "key,rolling_start,rolling_period\n"
        f"{KEY_A},{NOW // 600 - 2016 - 144},144\n"
        f"{KEY_B},{NOW // 600 - 300},145\n"
        f"{KEY_C},{NOW // 600 - 300},144\n"
    ))  # fmt: skip
    result = ha("push", "--csv", keys, *connection(peer_address, tls_dir), "--now", str(now_here), "--output", "json")
    assert result.returncode == 3, result.stderr
    report = one_json_object(result)
    assert (report["valid"], report["accepted"]) == (2, 1)
    assert [(r["origin"], r["key"]) for r in report["rejected"]] == [("line 3", KEY_B), ("line 2", KEY_A)]
    assert report["rejected"][0]["reason"].startswith("not sent: rolling_period: must be 1..144")
    assert report["rejected"][1]["reason"].startswith("rolling_start_interval_number: expired more than 14 days")


def test_an_authority_the_server_refuses_gets_one_line_and_exit_1(peer_address, peer, tls_dir, tmp_path):
    keys = key_file(tmp_path, 3, NOW // 600 - 400)
    error = assert_one_line_error(
        ha("push", "--csv", keys, *connection(peer_address, tls_dir, "stranger"), "--now", str(NOW))
    )
    assert error.startswith(f"matcher-ha: error: {peer_address}: submission 1 of 1 (import-")
    assert "PERMISSION_DENIED: this certificate's authority may not submit keys" in error
    assert peer.stored == {}


def test_a_server_that_is_not_there_is_one_line_after_the_retries(tls_dir, tmp_path):
    keys = key_file(tmp_path, 3, NOW // 600 - 400)
    error = assert_one_line_error(ha("push", "--csv", keys, *connection("127.0.0.1:1", tls_dir), "--now", str(NOW)))
    assert "127.0.0.1:1: submission 1 of 1" in error and "UNAVAILABLE" in error


def test_a_tls_folder_without_the_authoritys_certificate_is_one_line(tmp_path):
    keys = key_file(tmp_path, 1, NOW // 600 - 400)
    error = assert_one_line_error(ha("push", "--csv", keys, *connection("127.0.0.1:1", tmp_path), "--now", str(NOW)))
    assert "no ca.pem or vn-moh.key or vn-moh.pem" in error


def test_issue_code_prints_the_code_or_one_json_object(peer_address, tls_dir):
    plain = ha("issue-code", *connection(peer_address, tls_dir), "--onset", "2020-05-20", "--ttl", "600")
    assert (plain.returncode, plain.stdout) == (0, "K7P2QX9M\n"), plain.stderr
    as_json = ha("issue-code", *connection(peer_address, tls_dir), "--json")
    assert one_json_object(as_json) == {"code": "K7P2QX9M", "expires_at": NOW + 3600}
    assert ha("issue-code", *connection(peer_address, tls_dir), "--output", "json").stdout == as_json.stdout


def test_issue_code_refuses_a_bad_date_or_ttl_before_calling(tls_dir):
    error = assert_one_line_error(ha("issue-code", *connection("127.0.0.1:1", tls_dir), "--onset", "20/05/2020"), 2)
    assert "'20/05/2020' is not a date in the form YYYY-MM-DD" in error
    error = assert_one_line_error(ha("issue-code", *connection("127.0.0.1:1", tls_dir), "--ttl", "90000"), 2)
    assert "must be 0..86400, got 90000" in error


def test_issue_code_for_a_cases_contact_sends_the_exposure_day_and_level_f1(peer_address, peer, tls_dir):
    result = ha(
        "issue-code",
        *connection(peer_address, tls_dir),
        "--report-type",
        "RECURSIVE",
        "--exposure-date",
        "2020-05-20",
        "--exposure-level",
        "F1",
    )
    assert (result.returncode, result.stdout) == (0, "K7P2QX9M\n"), result.stderr
    [sent] = peer.codes[-1:]
    assert (sent.report_type, sent.exposure_date, sent.exposure_level) == (4, "2020-05-20", 1)


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["--report-type", "RECURSIVE"], "needs --exposure-date"),
        (
            ["--report-type", "RECURSIVE", "--exposure-date", "2020-05-20", "--exposure-level", "F2"],
            "warnings stop at F2",
        ),
        (["--exposure-date", "2020-05-20"], "are for --report-type RECURSIVE"),
    ],
)
def test_issue_code_refuses_a_contact_code_it_cannot_send_before_calling(tls_dir, arguments, reason):
    error = assert_one_line_error(ha("issue-code", *connection("127.0.0.1:1", tls_dir), *arguments))
    assert reason in error


def test_set_config_sends_a_configuration_and_reports_its_version(peer_address, tls_dir, tmp_path):
    config = write(tmp_path / "config.json", json_format.MessageToJson(default_config()))
    result = ha("set-config", *connection(peer_address, tls_dir), "--file", config, "--json")
    assert result.returncode == 0, result.stderr
    answer = one_json_object(result)
    assert (answer["version"], answer["issued_at"], answer["key_version"]) == (1, NOW, "v1")


def test_an_invalid_configuration_is_refused_locally_naming_the_field(tls_dir, tmp_path):
    config = default_config()
    del config.attenuation_thresholds_db[:]
    path = write(tmp_path / "config.json", json_format.MessageToJson(config))
    error = assert_one_line_error(ha("set-config", *connection("127.0.0.1:1", tls_dir), "--file", path))
    assert "config.attenuation_thresholds_db: must be exactly 3 strictly increasing values in dB" in error
    not_config = write(tmp_path / "other.json", '{"weights": 1}')
    error = assert_one_line_error(ha("set-config", *connection("127.0.0.1:1", tls_dir), "--file", not_config))
    assert "other.json: not an ExposureConfig in JSON" in error


# --- writing GAEN exports -------------------------------------------------------------------------------------


def test_keys_exported_as_a_signed_gaen_zip_read_back_the_same(tmp_path):
    key = generate_signing_key()
    write_signing_key(key, tmp_path / "signing.key", tmp_path / "signing.pub.pem")
    start = NOW // 600 - 300
    keys = write(tmp_path / "keys.json", json.dumps([
        {"key": KEY_A, "rolling_start": start + 7, "rolling_period": 100, "report_type": "SELF_REPORT", "days_since_onset": -1},
        {"key": KEY_B, "rolling_start": start - 144},
    ]))  # fmt: skip
    written = ha("export", "--json", keys, "--out", tmp_path / "out.zip", "--signing-key", tmp_path / "signing.key",
                 "--region", "VN", "--key-id", "310")  # fmt: skip
    assert written.returncode == 0, written.stderr
    via_export = ha("push", "--export", tmp_path / "out.zip", "--verify-key", tmp_path / "signing.pub.pem",
                    "--dry-run", "--now", str(NOW), "--output", "json")  # fmt: skip
    via_json = ha("push", "--json", keys, "--dry-run", "--now", str(NOW), "--output", "json")
    assert via_export.returncode == 0, via_export.stderr
    assert via_export.stdout == via_json.stdout
    assert read_export(tmp_path / "out.zip").contents.signature_infos[0].verification_key_id == "310"


def test_the_sample_times_are_what_the_tests_say():
    assert parse_time(INTERNALS_ALL_VALID) // 600 == 2655792 + 144
    assert parse_time(ENS_ONE_TOO_OLD) // 600 - 14 * 144 == 2649866 + 114


def test_a_long_import_draws_a_progress_bar_on_a_terminal_without_touching_the_json_on_stdout(
    peer_address, tls_dir, tmp_path
):
    keys = key_file(tmp_path, 130, NOW // 600 - 400)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "clients.ha.cli", "push", "--csv", str(keys),
         *map(str, connection(peer_address, tls_dir)), "--now", str(NOW), "--output", "json"],
        stdout=subprocess.PIPE, stderr=terminal, text=True, env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
    )  # fmt: skip
    os.close(terminal)
    stdout, _ = process.communicate(timeout=120)
    drawn = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal's other end is closed: everything has been read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(controller)
    assert process.returncode == 0
    assert json.loads(stdout)["accepted"] == 130 and stdout.count("\n") == 1
    assert b"submissions" in drawn  # the bar's label, drawn on the terminal


def test_an_import_not_on_a_terminal_draws_no_progress_bar(peer_address, tls_dir, tmp_path):
    keys = key_file(tmp_path, 130, NOW // 600 - 400)
    result = ha("push", "--csv", keys, *connection(peer_address, tls_dir), "--now", str(NOW), "--output", "json")
    assert result.returncode == 0 and result.stderr == ""
