"""Decoy shares and padding against the real server over TLS (docs/privacy.md, "Decoy shares"): on the wire a decoy
is a share, same request size, same status, same answer size; in the store it is nothing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from clients.launch import Server
from clients.phone.decoy import decoy_request
from clients.phone.keys import key_for_day
from clients.phone.share import share_request
from clients.phone.store import PhoneStore
from exposure.v1 import sharing_pb2
from matcher.errors import violations_of
from matcher.intervals import interval_number
from matcher.padding import REQUEST, RESPONSE, padded
from tests.integration.harness import NOW, start_server
from tests.integration.test_service import issue_code, publish

SUBMIT_WITH_CODE = "/exposure.v1.Sharing/SubmitWithCode"


@pytest.fixture
def server(pki, tmp_path) -> Iterator[Server]:
    running = start_server(
        pki,
        f"sqlite:{tmp_path / 'service.db'}",
        "--now",
        str(NOW),
        "--metrics-listen",
        "127.0.0.1:0",
        log=tmp_path / "serve.log",
    )
    yield running
    running.stop()


def database(server: Server) -> Path:
    return Path(server.store.removeprefix("sqlite:"))


def everything_stored(server: Server) -> list[str]:
    with sqlite3.connect(database(server)) as db:
        return list(db.iterdump())


def phone_with_keys(tmp_path: Path, days: int, name: str = "case") -> PhoneStore:
    """A phone that has used the app for ``days`` days before today: that many expired keys to share."""
    phone = PhoneStore(tmp_path / f"{name}.db")
    for day in range(1, days + 1):
        key_for_day(phone, interval_number(NOW) - 144 * day)
    return phone


def call(server: Server, request: sharing_pb2.SubmitWithCodeRequest) -> tuple[grpc.StatusCode, bytes | str, list]:
    """SubmitWithCode as bytes on a connection of its own: the status, and the answer's bytes or the refusal's
    message, and its field violations."""
    raw = server.public_channel().unary_unary(SUBMIT_WITH_CODE, _registered_method=True)
    try:
        return grpc.StatusCode.OK, raw(request.SerializeToString(), timeout=10), []
    except grpc.RpcError as refused:
        return refused.code(), refused.details(), violations_of(refused)


def with_code(request: sharing_pb2.SubmitWithCodeRequest, code: str) -> sharing_pb2.SubmitWithCodeRequest:
    request.code = code
    return padded(request, REQUEST)


@pytest.mark.parametrize("days", [1, 14])
def test_a_real_share_and_a_decoy_have_the_same_size_on_the_wire(tmp_path, days):
    phone = phone_with_keys(tmp_path, days)
    shares = [
        share_request(phone, "ABCD-EFGH-JKMN", NOW),
        share_request(phone, "abcd efgh jkmn", NOW, contact_intervals=True),
    ]
    assert [len(share.keys) for share in shares] == [days, days]
    sizes = {len(request.SerializeToString()) for request in [*shares, decoy_request(NOW), decoy_request(NOW)]}
    assert sizes == {REQUEST.floor}


def test_a_decoy_gets_a_shares_status_and_answer_size_and_stores_nothing(server, tmp_path):
    before, logged = everything_stored(server), len(server.log_text())
    decoy = decoy_request(NOW)
    status, decoy_answer, _ = call(server, decoy)
    assert status == grpc.StatusCode.OK
    assert everything_stored(server) == before  # not a row, not a code, not a submission record
    assert publish(server) == []  # no batch: no pending key
    with sqlite3.connect(database(server)) as db:
        assert db.execute("SELECT count(*) FROM pending").fetchone() == (0,)
    # What the decoy's call logged: nothing. Answered calls log at DEBUG (with --verbose, a share's and a decoy's
    # the same line), and a decoy writes no line of its own.
    logged_lines = server.log_text()[logged:].splitlines()
    assert [line for line in logged_lines if "matcher.servicers" in line or "Submit" in line] == []

    code = issue_code(server).code
    status, real_answer, _ = call(server, share_request(phone_with_keys(tmp_path, 14), code, NOW))
    assert status == grpc.StatusCode.OK
    assert len(decoy_answer) == len(real_answer) == RESPONSE.floor
    assert sharing_pb2.SubmitWithCodeResponse.FromString(decoy_answer).accepted == len(decoy.keys) == 14
    assert sharing_pb2.SubmitWithCodeResponse.FromString(real_answer).accepted == 14
    [batch] = publish(server)
    assert batch["keys_published"] == 14  # the share's, nothing of the decoy's

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics}/metrics", timeout=10).read().decode()
    assert "matcher_decoy_shares_total 1" in metrics
    assert 'matcher_rpc_total{code="OK",method="SubmitWithCode"} 2' in metrics


def test_a_decoy_with_a_live_code_leaves_it_unused_and_is_answered_as_with_any_other_code(server, tmp_path):
    code = issue_code(server).code
    with_live, with_made_up = call(server, with_code(decoy_request(NOW), code)), call(server, decoy_request(NOW))
    assert with_live[0] == with_made_up[0] == grpc.StatusCode.OK and len(with_live[1]) == len(with_made_up[1])
    status, answer, _ = call(server, share_request(phone_with_keys(tmp_path, 3), code, NOW))
    assert status == grpc.StatusCode.OK and sharing_pb2.SubmitWithCodeResponse.FromString(answer).accepted == 3


@pytest.mark.parametrize("bogus", ["short", "0000-0000-0000", "", "ABCD-EFGH-JKMN-PQRS"])
def test_a_decoy_with_a_bogus_code_is_refused_as_a_share_with_it_is(server, tmp_path, bogus):
    real = call(server, share_request(phone_with_keys(tmp_path, 14), bogus, NOW))
    decoy = call(server, with_code(decoy_request(NOW), bogus))
    assert real[0] == decoy[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert real[1] == decoy[1] == "the upload is malformed" and real[2] == decoy[2]
    assert [v.field for v in decoy[2]] == ["code"]


def test_a_decoy_whose_keys_are_all_invalid_is_refused_as_such_a_share_is(server):
    keys_too_old = decoy_request(NOW - 30 * 86400)  # 30 days ago: every key is past retention
    code = issue_code(server).code
    real = call(server, with_code(sharing_pb2.SubmitWithCodeRequest(keys=keys_too_old.keys), code))
    decoy = call(server, keys_too_old)
    assert real[0] == decoy[0] == grpc.StatusCode.INVALID_ARGUMENT and real[1] == decoy[1] and real[2] == decoy[2]


def phone_cli(db: Path, *args: str, now: int = NOW) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clients.phone.cli", "--db", str(db), "--now", str(now), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_phone_sends_decoys_by_command_and_on_its_random_schedule_at_syncs(server, tmp_path):
    address = ["--server", server.public, "--tls-dir", str(server.phone_dir)]
    db = tmp_path / "phone.db"
    assert phone_cli(db, "init").returncode == 0
    sent = phone_cli(db, "decoy", *address, "--json")
    assert sent.returncode == 0 and json.loads(sent.stdout) == {"decoy": "sent"}, sent.stderr

    often = ["--decoys-per-day", "1000"]  # one every 86 s on average
    first = phone_cli(db, "sync", *address, *often, "--json")
    assert first.returncode == 0 and json.loads(first.stdout)["decoy"] is None, first.stderr  # the schedule starts
    later = phone_cli(db, "sync", *address, *often, "--json", now=NOW + 86400)
    assert later.returncode == 0 and json.loads(later.stdout)["decoy"] == "sent", later.stderr
    never = phone_cli(db, "sync", *address, "--decoys-per-day", "0", "--json", now=NOW + 2 * 86400)
    assert json.loads(never.stdout)["decoy"] is None
    refused = phone_cli(db, "sync", *address, "--decoys-per-day", "-1")
    assert refused.returncode == 1 and refused.stderr.strip().endswith("--decoys-per-day must be 0..1000, got -1")

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics}/metrics", timeout=10).read().decode()
    assert "matcher_decoy_shares_total 2" in metrics
    assert publish(server) == []  # nothing of the decoys to publish


def test_a_decoy_takes_about_as_long_as_a_share(server, tmp_path):
    """Timing is what is left to an observer (docs/privacy.md): a decoy does a share's reads but not its write.
    Measured here (each call a new TLS connection, as a phone's), loosely bounded."""
    phone = phone_with_keys(tmp_path, 14)
    shares, decoys = [], []
    for _ in range(10):
        request = share_request(phone, issue_code(server).code, NOW)
        began = time.perf_counter()
        assert call(server, request)[0] == grpc.StatusCode.OK
        shares.append(time.perf_counter() - began)
        began = time.perf_counter()
        assert call(server, decoy_request(NOW))[0] == grpc.StatusCode.OK
        decoys.append(time.perf_counter() - began)
    share_ms, decoy_ms = sorted(shares)[5] * 1000, sorted(decoys)[5] * 1000
    print(f"median share {share_ms:.1f} ms, decoy {decoy_ms:.1f} ms")
    assert abs(share_ms - decoy_ms) < 100
