"""An SQLite store that cannot be written.

What the service does, decided here:

- A database **file** that is read-only (a mistaken chmod, a copy restored read-only): the server starts, serves
  what it can read (phones keep downloading), answers every write UNAVAILABLE with a generic message (the
  file's path goes to the log only), and reports NOT_SERVING. Once the file is writable again it recovers by
  itself, without a restart: health SERVING, writes accepted.
- A database in a read-only **folder**: SQLite cannot even read a WAL database there (it must create the -wal
  and -shm files next to it), so `matcher serve` and `matcher publish` refuse to start, in one line, exit 1.

As root, permission bits do not stop writes; the file or folder is then made immutable (chattr +i) instead.
"""

from __future__ import annotations

import grpc
import pytest

from clients.launch import matcher
from exposure.v1 import authority_pb2, distribution_pb2
from matcher.signing import TrustedKeys, load_verifying_key
from matcher.store import open_store
from tests.integration.harness import NOW, start_server
from tests.integration.test_service import download, publish
from tests.support.published import check_exactly_once
from tests.support.read_only import read_only
from tests.support.submitters import NOT_SERVING, SERVING, submission, wait_for_health


def code_of(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        assert "unavailable" in error.details() and "/" not in error.details(), error.details()
        return error.code()
    return grpc.StatusCode.OK


def test_a_read_only_database_file_serves_reads_refuses_writes_unavailable_and_recovers_without_a_restart(
    fault_pki, tmp_path
):
    database = tmp_path / "matcher.db"
    store_url = f"sqlite:{database}"
    before = submission("before")
    first = start_server(fault_pki, store_url, "--now", str(NOW), log=tmp_path / "first.log")
    first.authority_stub().SubmitKeys(before, timeout=10)
    [batch] = publish(first)
    first.stop()

    with read_only(database):
        server = start_server(fault_pki, store_url, "--now", str(NOW), log=tmp_path / "serve.log")
        try:
            wait_for_health(server.public_channel(), NOT_SERVING)
            phones = server.distribution_stub()
            listing = phones.ListBatches(distribution_pb2.ListBatchesRequest(), timeout=10)
            assert [len(listing.batches), len(download(phones, 1))] == [1, batch["body_bytes"]]

            authority = server.authority_stub()
            during = submission("during")
            assert code_of(lambda: authority.SubmitKeys(during, timeout=10)) == grpc.StatusCode.UNAVAILABLE
            issue = authority_pb2.IssueCodeRequest(report_type=1)
            assert code_of(lambda: authority.IssueCode(issue, timeout=10)) == grpc.StatusCode.UNAVAILABLE
            refused = matcher("publish", "--store", store_url, "--tls-dir", str(fault_pki / "server"), check=False)
            assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "read-only" in refused.stderr
        except BaseException:
            server.stop()
            raise

    try:
        wait_for_health(server.public_channel(), SERVING)
        assert code_of(lambda: authority.SubmitKeys(during, timeout=10)) == grpc.StatusCode.OK
        publish(server)
        trusted = TrustedKeys([load_verifying_key(fault_pki / "server" / "signing.pub.pem")])
        assert check_exactly_once(open_store(store_url), trusted, [*before.keys, *during.keys]).keys_found == 4
        assert "read-only" in server.log_text() and "Traceback" not in server.log_text()
    finally:
        server.stop()


@pytest.mark.parametrize("existing", [True, False], ids=["an existing database", "a new database"])
def test_a_database_in_a_read_only_folder_stops_serve_and_publish_in_one_line(fault_pki, tmp_path, existing):
    folder = tmp_path / "data"
    folder.mkdir()
    store_url = f"sqlite:{folder / 'matcher.db'}"
    if existing:
        open_store(store_url).close()  # a clean close leaves no -wal or -shm file behind
    commands = {
        "serve": ["--listen", "127.0.0.1:0", "--authority-listen", "127.0.0.1:0"],
        "publish": [],
    }
    with read_only(folder):
        for command, extra in commands.items():
            result = matcher(
                command, "--store", store_url, "--tls-dir", str(fault_pki / "server"), *extra, check=False, timeout=60
            )
            assert result.returncode == 1, (command, result.stderr)
            [line] = result.stderr.splitlines()
            if command == "publish" and not existing:  # only serve makes a store: publish does not try
                assert (
                    line == f"matcher: error: {store_url}: no such database (`matcher serve` creates it; "
                    "--store names another)"
                ), line
                continue
            assert line.startswith("matcher: error: sqlite store") and "-wal and -shm" in line, line
