"""Phones against the real service: a phone meets a case, the case shares its keys with a code, a batch is cut,
the phones sync, verify and match on the device. Stories in the DP-3T style, on real TLS and real storage."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from exposure.v1 import authority_pb2, batch_pb2, distribution_pb2, distribution_pb2_grpc
from matcher.model import ReportType
from matcher.signing import TrustedKeys, load_verifying_key
from clients.phone.keys import broadcast_at, key_for_day
from clients.phone.matching import match_new
from clients.phone.scoring import score
from clients.phone.share import share, share_request
from clients.phone.store import PhoneStore
from clients.phone.sync import sync
from matcher.exposure_config import default_config
from matcher.intervals import interval_number
from tests.integration.conftest import NOW, TODAY
from tests.integration.harness import start_server
from tests.integration.test_service import publish

MEETING = (TODAY - 144) * 600 + 9 * 3600  # yesterday 09:00 UTC
SCAN_SECONDS = 300  # the phones' scanner runs every 5 minutes
CLOSE_RANGE_RSSI = -60  # attenuation 52 dB with the case's -8 dBm: the "immediate" bucket


def phone(tmp_path: Path, name: str) -> PhoneStore:
    return PhoneStore(tmp_path / f"{name}.db")


def meet(case: PhoneStore, contact: PhoneStore, start: int, minutes: int, rssi: int = CLOSE_RANGE_RSSI,
         shift_intervals: int = 0) -> None:
    """The contact's scanner hears the case every 5 minutes for ``minutes`` minutes. With ``shift_intervals``,
    the contact records what it heard that many intervals later: an identifier replayed by an attacker."""
    rows = []
    for t in range(start, start + minutes * 60, SCAN_SECONDS):
        heard = broadcast_at(case, t)
        when = t + shift_intervals * 600
        rows.append((heard.rpi, interval_number(when), when, rssi, heard.aem))
    contact.add_sightings(rows)


def trusted(tls_dir: Path) -> TrustedKeys:
    return TrustedKeys([load_verifying_key(tls_dir / "signing.pub.pem")])


def public_channel(server) -> grpc.Channel:
    return server.public_channel()


@pytest.fixture
def sqlite_server(pki, tmp_path) -> Iterator:
    # The day after the meeting, when yesterday's keys have expired and can be shared.
    running = start_server(pki, f"sqlite:{tmp_path / 'service.db'}", "--now", str(NOW), log=tmp_path / "serve.log")
    yield running
    running.stop()


def diagnose_and_share(server, case: PhoneStore) -> None:
    issued = server.authority_stub().IssueCode(
        authority_pb2.IssueCodeRequest(report_type=ReportType.CONFIRMED_TEST, symptom_onset_date="2026-11-19"),
        timeout=10,
    )
    response = share(public_channel(server), case, issued.code, NOW)
    assert response.accepted >= 1 and not response.rejected
    [batch] = publish(server, now=NOW + 86400)
    assert batch["keys_published"] >= 1


def check(contact: PhoneStore) -> list:
    match_new(contact)
    stored = contact.get("config")
    from exposure.v1 import config_pb2

    config = config_pb2.ExposureConfig.FromString(config_pb2.SignedExposureConfig.FromString(stored).config)
    return score(contact, config)


def test_a_phone_near_a_case_for_20_minutes_alerts_and_5_minutes_or_nothing_does_not(sqlite_server, tmp_path):
    case = phone(tmp_path, "case")
    key_for_day(case, interval_number(MEETING))
    near, brief, stranger = phone(tmp_path, "near"), phone(tmp_path, "brief"), phone(tmp_path, "stranger")
    meet(case, near, MEETING, 20)
    meet(case, brief, MEETING + 3600, 5)
    diagnose_and_share(sqlite_server, case)

    for contact in (near, brief, stranger):
        report = sync(public_channel(sqlite_server), contact, trusted(sqlite_server.tls_dir))
        assert report.new_batches == [1] and not report.refused

    [near_day] = check(near)
    assert near_day.alert and near_day.minutes >= 15 and near_day.day == "2026-11-19"
    [brief_day] = check(brief)
    assert not brief_day.alert and brief_day.matched_intervals == 1
    assert check(stranger) == []


def test_a_single_matched_interval_never_alerts_however_many_sightings_it_has(sqlite_server, tmp_path):
    case, contact = phone(tmp_path, "case"), phone(tmp_path, "contact")
    key_for_day(case, interval_number(MEETING))
    heard = broadcast_at(case, MEETING)
    contact.add_sightings([(heard.rpi, interval_number(MEETING), MEETING + s, -50, heard.aem) for s in range(0, 600, 30)])
    diagnose_and_share(sqlite_server, case)
    sync(public_channel(sqlite_server), contact, trusted(sqlite_server.tls_dir))
    [day] = check(contact)
    assert day.matched_intervals == 1 and day.minutes <= 10 and not day.alert


def test_an_identifier_replayed_at_another_interval_does_not_match(sqlite_server, tmp_path):
    case, victim = phone(tmp_path, "case"), phone(tmp_path, "victim")
    key_for_day(case, interval_number(MEETING))
    meet(case, victim, MEETING, 30, shift_intervals=3)
    diagnose_and_share(sqlite_server, case)
    sync(public_channel(sqlite_server), victim, trusted(sqlite_server.tls_dir))
    assert check(victim) == []


# --- what the phone sends -------------------------------------------------------------------------------------------


class Recorder(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Records every request message a channel sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    def intercept_unary_unary(self, continuation, details, request):
        self.sent.append((details.method, request))
        return continuation(details, request)

    def intercept_unary_stream(self, continuation, details, request):
        self.sent.append((details.method, request))
        return continuation(details, request)


def test_a_sync_sends_nothing_but_cursors_and_offsets(sqlite_server, tmp_path):
    case, contact = phone(tmp_path, "case"), phone(tmp_path, "contact")
    key_for_day(case, interval_number(MEETING))
    meet(case, contact, MEETING, 20)
    diagnose_and_share(sqlite_server, case)
    recorder = Recorder()
    sync(grpc.intercept_channel(public_channel(sqlite_server), recorder), contact, trusted(sqlite_server.tls_dir))

    allowed = {
        "/exposure.v1.Distribution/GetExposureConfig": set(),
        "/exposure.v1.Distribution/ListBatches": {"after_sequence", "page_size"},
        "/exposure.v1.Distribution/DownloadBatch": {"sequence", "offset", "chunk_size"},
    }
    assert {method for method, _ in recorder.sent} == set(allowed)
    heard = {row.tobytes() for row in contact.sightings().rpis}
    for method, request in recorder.sent:
        assert {f.name for f, _ in request.ListFields()} <= allowed[method]
        wire = request.SerializeToString()
        assert not any(rpi in wire for rpi in heard)


def test_a_share_sends_the_code_and_own_keys_only(tmp_path):
    case = phone(tmp_path, "case")
    for day in range(1, 4):
        key_for_day(case, interval_number(NOW) - 144 * day)
    key_for_day(case, interval_number(NOW))  # today's key: still in use, not shared
    contact = phone(tmp_path, "contact")
    meet(case, contact, MEETING, 20)
    request = share_request(case, "ABCD-EFGH-JKMN", NOW)
    assert [f.name for f, _ in request.ListFields()] == ["code", "keys"]
    own = {tek for _, tek, _ in case.own_keys()}
    assert len(request.keys) == 3 and {k.key_data for k in request.keys} <= own
    for key in request.keys:
        assert {f.name for f, _ in key.ListFields()} <= {"key_data", "rolling_start_interval_number", "rolling_period",
                                                         "tx_power_dbm"}


# --- refusing bad batches -------------------------------------------------------------------------------------------


class TamperingDistribution(distribution_pb2_grpc.DistributionServicer):
    """A man in the middle between phones and the service (a compromised mirror or CDN)."""

    def __init__(self, upstream: distribution_pb2_grpc.DistributionStub, mode: str) -> None:
        self.upstream, self.mode = upstream, mode

    def GetExposureConfig(self, request, context):  # noqa: N802
        return self.upstream.GetExposureConfig(request, timeout=10)

    def ListBatches(self, request, context):  # noqa: N802
        listing = self.upstream.ListBatches(request, timeout=10)
        if self.mode == "header-bit" and listing.batches:
            header = bytearray(listing.batches[0].header)
            header[len(header) // 2] ^= 0x01
            listing.batches[0].header = bytes(header)
        return listing

    def DownloadBatch(self, request, context):  # noqa: N802
        for chunk in self.upstream.DownloadBatch(request, timeout=10):
            if self.mode == "body-bit" and chunk.offset == 0:
                data = bytearray(chunk.data)
                data[len(data) // 2] ^= 0x80
                chunk.data = bytes(data)
            if self.mode == "truncated":
                chunk.data = chunk.data[: len(chunk.data) // 2]
                yield chunk
                return
            yield chunk


@pytest.mark.parametrize("mode, reason", [("body-bit", "SHA-256"), ("header-bit", "signature"), ("truncated", "truncated")])
def test_a_tampered_batch_is_refused_with_a_reason_and_never_used(sqlite_server, tmp_path, mode, reason):
    case, contact = phone(tmp_path, "case"), phone(tmp_path, "contact")
    key_for_day(case, interval_number(MEETING))
    meet(case, contact, MEETING, 20)
    diagnose_and_share(sqlite_server, case)

    proxy = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    upstream = distribution_pb2_grpc.DistributionStub(public_channel(sqlite_server))
    distribution_pb2_grpc.add_DistributionServicer_to_server(TamperingDistribution(upstream, mode), proxy)
    port = proxy.add_insecure_port("127.0.0.1:0")
    proxy.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            report = sync(channel, contact, trusted(sqlite_server.tls_dir))
    finally:
        proxy.stop(0)
    assert report.new_batches == [] and len(report.refused) == 1
    assert reason.lower() in report.refused[0][1].lower()
    assert contact.batches() == [] and check(contact) == []


# --- the command line -------------------------------------------------------------------------------------------------


def phone_cli(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clients.phone.cli", "--db", str(db), "--now", str(NOW), *args],
                          capture_output=True, text=True, timeout=120)


def test_the_phone_command_line_observes_syncs_and_checks(sqlite_server, tmp_path):
    case = phone(tmp_path, "case")
    key_for_day(case, interval_number(MEETING))
    lines = []
    for t in range(MEETING, MEETING + 25 * 60, SCAN_SECONDS):
        heard = broadcast_at(case, t)
        lines.append(json.dumps({"rpi": heard.rpi.hex(), "aem": heard.aem.hex(), "rssi": -58, "time": t}))
    (tmp_path / "heard.jsonl").write_text("\n".join(lines) + "\n")
    diagnose_and_share(sqlite_server, case)

    db = tmp_path / "cli-phone.db"
    assert phone_cli(db, "init").returncode == 0
    observed = phone_cli(db, "observe", str(tmp_path / "heard.jsonl"), "--json")
    assert json.loads(observed.stdout) == {"recorded": 5}, observed.stderr
    synced = phone_cli(db, "sync", "--server", sqlite_server.public, "--tls-dir", str(sqlite_server.tls_dir), "--json")
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["new_batches"] == [1]
    checked = phone_cli(db, "check", "--json")
    [day] = json.loads(checked.stdout)
    assert set(day) == {"day", "matched_intervals", "minutes", "score", "alert"}
    assert day["alert"] is True and day["day"] == "2026-11-19"


def test_a_malformed_sighting_line_is_refused_in_one_line_and_nothing_is_recorded(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"rpi": "00", "aem": "00000000", "rssi": -50, "time": 1}\n')
    result = phone_cli(tmp_path / "p.db", "observe", str(tmp_path / "bad.jsonl"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "line 1" in result.stderr
    assert len(PhoneStore(tmp_path / "p.db").sightings()) == 0
