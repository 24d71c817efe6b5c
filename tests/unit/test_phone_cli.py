"""`matcher-phone rpis`, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.unit.test_crypto import START, TEK, VECTORS


def phone(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clients.phone.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_rpis_prints_the_gaen_vector_identifiers_one_per_line():
    result = phone("rpis", "--tek", TEK.hex(), "--start", str(START))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [v["rpi"] for v in VECTORS["intervals"]]


def test_rpis_json_lists_interval_and_rpi():
    result = phone("rpis", "--tek", TEK.hex(), "--start", str(START + 3), "--period", "2", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"interval": START + 3, "rpi": VECTORS["intervals"][3]["rpi"]},
        {"interval": START + 4, "rpi": VECTORS["intervals"][4]["rpi"]},
    ]


def test_a_bad_key_is_one_line_on_stderr_and_a_non_zero_exit():
    result = phone("rpis", "--tek", "abcd", "--start", "1")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "expected 16 bytes" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_period_out_of_range_is_refused_in_one_line():
    result = phone("rpis", "--tek", TEK.hex(), "--start", "1", "--period", "145")
    assert result.returncode == 1
    assert result.stderr.strip() == "matcher-phone: error: --period must be 1..144, got 145"


def test_sharing_as_a_contact_without_an_f1_alert_is_one_line_before_any_call(tmp_path):
    db = str(tmp_path / "phone.db")
    assert phone("--db", db, "--now", "2026-11-22T09:00Z", "init").returncode == 0
    # no server runs on port 1: the refusal comes first, from the phone's own alerts
    result = phone(
        "--db",
        db,
        "--now",
        "2026-11-23T09:00Z",
        "share",
        "--as-contact",
        "--code",
        "ABCDEFGHJKMN",
        "--server",
        "127.0.0.1:1",
        "--tls-dir",
        str(tmp_path),
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "matcher-phone: error: this phone has no F1 alert to date the exposure from: give the day with --since YYYY-MM-DD"
    )
