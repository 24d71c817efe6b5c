"""Venue check-ins, as their users run them: a venue owner's QR code and trace file (`matcher-ha venue create`),
phones checking in by the code's text (`matcher-phone checkin`), the authority warning hours with the owner's file
(`matcher-ha venue-warn`), a batch cut (`matcher publish`), phones syncing over real TLS and matching on the device
(`matcher-phone sync`, `check --json`)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from tests.integration.harness import NOW, start_server
from tests.integration.test_service import publish

HOUR = NOW // 3600 - 20  # the outbreak's hour: yesterday, well inside the retention window
AUTHORITY = "ha-north"


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def ha(*args: str | Path) -> subprocess.CompletedProcess:
    return run("clients.ha.cli", *args)


def phone(db: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return run("clients.phone.cli", "--db", db, "--now", NOW, *args)


def ok(result: subprocess.CompletedProcess) -> dict | list:
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def service(pki, tmp_path) -> Iterator:
    running = start_server(pki, f"sqlite:{tmp_path / 'service.db'}", "--now", str(NOW), log=tmp_path / "serve.log")
    yield running
    running.stop()


def create_venue(folder: Path, name: str) -> str:
    """A venue's files, made as an owner makes them; its QR code's payload."""
    created = ok(ha("venue", "create", "--name", name, "--out", folder, "--json"))
    payload = (folder / "payload.txt").read_text().strip()
    assert created == {"name": name, "payload": payload, "out": str(folder)}
    return payload


def warn(service, trace: Path, start: int, end: int) -> dict:
    return ok(
        ha(
            "venue-warn",
            "--server",
            service.authority,
            "--tls-dir",
            service.pki / f"authority-{AUTHORITY}",
            "--authority",
            AUTHORITY,
            "--trace",
            trace,
            "--from",
            start,
            "--until",
            end,
            "--json",
        )
    )


def venue_days(db: Path, server) -> list[dict]:
    """What a phone reports after syncing: its venue results only (it has no sightings)."""
    synced = ok(phone(db, "sync", "--server", server.public, "--tls-dir", server.phone_dir, "--json"))
    assert not synced["refused"] and not synced["interrupted"]
    results = ok(phone(db, "check", "--json"))
    assert {r["kind"] for r in results} <= {"venue"}
    return results


def test_phones_that_checked_in_during_a_warned_hour_alert_and_others_stay_quiet(service, tmp_path):
    cafe = create_venue(tmp_path / "cafe", "Phở 24, Hàng Bông")
    bakery = create_venue(tmp_path / "bakery", "Bakery")
    first, second, elsewhere = (tmp_path / f"{name}.db" for name in ("first", "second", "elsewhere"))
    start = HOUR * 3600
    for db, payload, entry, exit_ in (
        (first, cafe, start + 600, start + 3000),
        (second, cafe, start + 1200, start + 3300),
        (elsewhere, bakery, start + 600, start + 3000),
    ):
        assert phone(db, "init").returncode == 0
        checked_in = ok(phone(db, "checkin", payload, "--at", entry, "--until", exit_, "--json"))
        assert checked_in["entry"] == entry and checked_in["exit"] == exit_

    # A warning of the café for another hour (the morning): published, and it alerts nobody.
    assert warn(service, tmp_path / "cafe" / "trace.json", start - 5 * 3600, start - 4 * 3600)["hours"] == 1
    assert len(publish(service, now=NOW + 60)) == 1
    for db in (first, second, elsewhere):
        assert [r["alert"] for r in venue_days(db, service)] == []

    # The outbreak's hour at the café: both of its visitors alert, the bakery's does not.
    assert warn(service, tmp_path / "cafe" / "trace.json", start, start + 3600) == {
        "hours": 1,
        "first_hour": HOUR,
        "last_hour": HOUR,
        "replayed": False,
    }
    assert len(publish(service, now=NOW + 120)) == 1
    for db, minutes in ((first, 40), (second, 35)):
        [visit] = venue_days(db, service)
        assert visit["kind"] == "venue" and visit["alert"] is True and visit["minutes"] == minutes, visit
        assert visit["venue"] == "Phở 24, Hàng Bông"
    assert venue_days(elsewhere, service) == []

    # Warning the same window again is answered from the first time, and publishes nothing new.
    assert warn(service, tmp_path / "cafe" / "trace.json", start, start + 3600)["replayed"] is True
    assert publish(service, now=NOW + 180) == []


def test_the_qr_code_decodes_to_the_payload_with_an_independent_decoder_and_the_trace_file_stays_private(tmp_path):
    payload = create_venue(tmp_path / "venue", "Chợ Bến Thành, stall 12")
    decoded, _, _ = cv2.QRCodeDetector().detectAndDecode(cv2.imread(str(tmp_path / "venue" / "qr.png")))
    assert decoded == payload and payload.startswith("EXPOSURE-VENUE:1:")
    svg = (tmp_path / "venue" / "qr.svg").read_text()
    assert svg.lstrip().startswith(("<?xml", "<svg")) and "</svg>" in svg
    trace = tmp_path / "venue" / "trace.json"
    assert stat.S_IMODE(os.stat(trace).st_mode) == 0o600
    # The owner's private key is in the trace file only: neither the code's text nor its encodings carry it.
    seed = bytes.fromhex(json.loads(trace.read_text())["private_key"])
    assert json.loads(trace.read_text())["payload"] == payload
    assert not any(form in payload for form in (seed.hex(), base64.urlsafe_b64encode(seed).decode().rstrip("=")))

    before = trace.read_bytes()
    again = ha("venue", "create", "--name", "another", "--out", tmp_path / "venue")
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "never overwritten" in again.stderr
    assert trace.read_bytes() == before
