"""Keys and trust, against the real server: the server's folder holds no key but its own, an authority is its pinned
certificate and not only its name, and the authorities file is reloaded on SIGHUP while the server keeps serving."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from clients.launch import Server, authorities_file, make_pki, matcher
from exposure.v1 import authority_pb2, authority_pb2_grpc, distribution_pb2
from matcher.authz import fingerprint
from matcher.certs import issue, write_pair
from matcher.distribution import MIN_CHUNK_BYTES
from matcher.model import ReportType
from tests.integration.harness import NOW, start_server
from tests.integration.test_service import published_body_of

RELOAD_SECONDS = 15.0
PROCESSES = "2"  # SIGHUP goes to the supervisor, which passes it on: every worker must reload


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    return make_pki(tmp_path / "pki", "ha-north", "ha-new")


def policies(pki: Path) -> dict:
    return json.loads(authorities_file(pki).read_text())


def write_policies(pki: Path, document: dict) -> None:
    authorities_file(pki).write_text(json.dumps(document))


def issue_code(server: Server, name: str, folder: Path | None = None) -> grpc.StatusCode:
    """IssueCode as ``name`` on a new connection (so that each call may reach either worker); its status."""
    channel = server.authority_channel(name, tls_dir=folder)
    try:
        authority_pb2_grpc.AuthorityStub(channel).IssueCode(
            authority_pb2.IssueCodeRequest(report_type=ReportType.CONFIRMED_TEST), timeout=10
        )
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        return error.code()


def statuses(server: Server, name: str, folder: Path | None = None, calls: int = 6) -> set[grpc.StatusCode]:
    return {issue_code(server, name, folder) for _ in range(calls)}


def hang_up(server: Server, what: str) -> None:
    """SIGHUP, then waits until every worker has logged ``what`` once more than before."""
    before = server.log_text().count(what)
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + RELOAD_SECONDS
    while server.log_text().count(what) < before + int(PROCESSES):
        assert time.monotonic() < deadline, f"no {what!r} in the log after SIGHUP: {server.log_text()}"
        time.sleep(0.1)
    assert server.process.poll() is None, "the server stopped on SIGHUP"


def serve(pki: Path, tmp_path: Path, *extra: str) -> Server:
    return start_server(
        pki, f"sqlite:{tmp_path / 'matcher.db'}", "--processes", PROCESSES, *extra, log=tmp_path / "serve.log"
    )


def twin(pki: Path, folder: Path, name: str) -> Path:
    """A valid certificate from the authority CA in ``name``'s name: not the one `matcher certs` made and pinned."""
    ca = pki / "ca"
    ca_cert = x509.load_pem_x509_certificate((ca / "authority-ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((ca / "authority-ca.key").read_bytes(), password=None)
    folder.mkdir(exist_ok=True)
    write_pair(folder, name, *issue(ca_cert, ca_key, name, client=True))
    return folder


def pin_of(folder: Path, name: str) -> str:
    return fingerprint(x509.load_pem_x509_certificate((folder / f"{name}.pem").read_bytes()))


@pytest.mark.parametrize("key", ["ca/authority-ca.key", "ca/server-ca.key", "authority-ha-north/ha-north.key"])
def test_serve_refuses_a_server_folder_holding_a_ca_or_an_authority_private_key(pki, tmp_path, key):
    shutil.copy(pki / key, pki / "server" / "spare.key")
    store = tmp_path / "matcher.db"
    for command in ("serve", "publish"):
        refused = matcher(command, "--tls-dir", str(pki / "server"), "--store", f"sqlite:{store}", check=False)
        assert refused.returncode != 0
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()], refused.stderr  # one line
        assert "holds private keys that are not the server's (spare.key)" in refused.stderr
        assert not store.exists()


def test_a_certificate_with_an_authoritys_name_but_not_its_pinned_fingerprint_is_refused(pki, tmp_path):
    server = serve(pki, tmp_path)
    try:
        strangers = twin(pki, tmp_path / "strangers", "ha-north")
        assert statuses(server, "ha-north") == {grpc.StatusCode.OK}
        assert statuses(server, "ha-north", strangers) == {grpc.StatusCode.UNAUTHENTICATED}
        assert pin_of(strangers, "ha-north") not in server.log_text()
    finally:
        server.stop()


def test_sighup_revokes_an_authority_and_admits_another_while_the_server_keeps_running(pki, tmp_path):
    document = policies(pki)
    newcomer = document["authorities"].pop("ha-new")
    write_policies(pki, document)
    server = serve(pki, tmp_path)
    try:
        pid = server.process.pid
        assert statuses(server, "ha-north") == {grpc.StatusCode.OK}
        assert statuses(server, "ha-new") == {grpc.StatusCode.PERMISSION_DENIED}
        document["authorities"]["ha-new"] = newcomer
        del document["authorities"]["ha-north"]
        write_policies(pki, document)
        hang_up(server, "authorities file reloaded")
        assert statuses(server, "ha-new") == {grpc.StatusCode.OK}
        assert statuses(server, "ha-north") == {grpc.StatusCode.PERMISSION_DENIED}
        assert server.process.pid == pid and server.process.poll() is None
    finally:
        server.stop()


def test_sighup_rotates_an_authoritys_certificate_in_two_steps(pki, tmp_path):
    server = serve(pki, tmp_path)
    try:
        renewed = twin(pki, tmp_path / "renewed", "ha-north")
        document = policies(pki)
        pins = document["authorities"]["ha-north"]["certificate_sha256"]
        pins.append(pin_of(renewed, "ha-north"))  # step 1: both certificates, while the authority switches
        write_policies(pki, document)
        hang_up(server, "authorities file reloaded")
        assert statuses(server, "ha-north") | statuses(server, "ha-north", renewed) == {grpc.StatusCode.OK}
        pins.pop(0)  # step 2: the old one removed, revoked
        write_policies(pki, document)
        hang_up(server, "authorities file reloaded")
        assert statuses(server, "ha-north", renewed) == {grpc.StatusCode.OK}
        assert statuses(server, "ha-north") == {grpc.StatusCode.UNAUTHENTICATED}
    finally:
        server.stop()


@pytest.mark.parametrize("bad", ["{not json", '{"authorities": {"ha-north": {"regions": []}}}'])
def test_a_bad_authorities_file_on_sighup_is_logged_and_the_old_one_stays_in_force(pki, tmp_path, bad):
    server = serve(pki, tmp_path)
    try:
        authorities_file(pki).write_text(bad)
        hang_up(server, "authorities file not reloaded, the previous one stays in force")
        assert statuses(server, "ha-north") == {grpc.StatusCode.OK}
        assert statuses(server, "ha-new") == {grpc.StatusCode.OK}
    finally:
        server.stop()


def test_a_download_in_flight_finishes_across_a_sighup(pki, tmp_path):
    server = serve(pki, tmp_path, "--now", str(NOW))
    try:
        published, whole = published_body_of(server, 300)
        request = distribution_pb2.DownloadBatchRequest(sequence=published["sequence"], chunk_size=MIN_CHUNK_BYTES)
        stream = server.distribution_stub().DownloadBatch(request, timeout=30)
        first = next(stream)
        assert len(first.data) < len(whole)
        hang_up(server, "authorities file reloaded")
        assert first.data + b"".join(chunk.data for chunk in stream) == whole
    finally:
        server.stop()
