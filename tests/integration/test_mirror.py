"""The static mirror: `matcher mirror` writes the tree, a real HTTPS server serves it, phones sync from it with the
same verification as over gRPC, and refuse what does not verify."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clients.launch import matcher
from clients.phone.keys import broadcast_at, key_for_day
from clients.phone.mirror import MirrorClient, ssl_context, sync_mirror
from clients.phone.store import PhoneStore
from exposure.v1 import authority_pb2, mirror_pb2
from matcher.intervals import interval_number
from matcher.mirror import INDEX_NAME
from matcher.store import open_store
from tests.integration.harness import NOW, start_server
from tests.integration.test_phone import MEETING, check, diagnose_and_share, meet, phone, phone_cli, trusted
from tests.integration.test_service import diagnosis_key, publish
from tests.support.https_server import HttpsFiles, flip_byte

RETENTION = 14 * 86400


@pytest.fixture
def sqlite_server(pki, tmp_path):
    running = start_server(pki, f"sqlite:{tmp_path / 'service.db'}", "--now", str(NOW), log=tmp_path / "serve.log")
    yield running
    running.stop()


def write_tree(server, out: Path, now: int = NOW + 86400) -> dict:
    result = matcher(
        "mirror",
        "--store",
        server.store,
        "--tls-dir",
        str(server.tls_dir),
        "--out",
        str(out),
        "--now",
        str(now),
        "--json",
    )
    return json.loads(result.stdout)


def index_of(out: Path) -> mirror_pb2.MirrorIndex:
    return mirror_pb2.MirrorIndex.FromString(
        mirror_pb2.SignedMirrorIndex.FromString((out / INDEX_NAME).read_bytes()).index
    )


def mirror_sync(files: HttpsFiles, contact: PhoneStore, tls_dir: Path):
    client = MirrorClient(files.url, ssl_context(str(tls_dir.parent / "phone" / "ca.pem")))
    try:
        return sync_mirror(client, contact, trusted(tls_dir))
    finally:
        client.close()


def test_a_phone_syncs_from_the_mirror_over_https_and_alerts_sending_nothing_but_gets_of_public_files(
    sqlite_server, tmp_path
):
    case = phone(tmp_path, "case")
    key_for_day(case, interval_number(MEETING))
    heard = [
        json.dumps({"rpi": s.rpi.hex(), "aem": s.aem.hex(), "rssi": -58, "time": t})
        for t, s in ((t, broadcast_at(case, t)) for t in range(MEETING, MEETING + 25 * 60, 300))
    ]
    (tmp_path / "heard.jsonl").write_text("\n".join(heard) + "\n")
    diagnose_and_share(sqlite_server, case)
    written = write_tree(sqlite_server, tmp_path / "tree")
    assert written["files"] == 1 and written["added"] == [1] and written["newest_sequence"] == 1

    db = tmp_path / "phone.db"
    assert phone_cli(db, "init").returncode == 0
    assert phone_cli(db, "observe", str(tmp_path / "heard.jsonl")).returncode == 0
    with HttpsFiles(tmp_path / "tree", sqlite_server.tls_dir) as files:
        synced = phone_cli(db, "sync", "--mirror", files.url, "--tls-dir", str(sqlite_server.phone_dir), "--json")
        assert synced.returncode == 0, synced.stderr
        assert json.loads(synced.stdout)["new_batches"] == [1]
        again = phone_cli(db, "sync", "--mirror", files.url, "--tls-dir", str(sqlite_server.phone_dir), "--json")
        assert json.loads(again.stdout)["new_batches"] == []
    [day] = json.loads(phone_cli(db, "check", "--json").stdout)
    assert day["alert"] is True and day["day"] == "2026-11-19"

    public = {INDEX_NAME} | {f.name for f in index_of(tmp_path / "tree").files}
    assert files.requests and all(r.method == "GET" and not r.body for r in files.requests)
    assert {r.path.lstrip("/") for r in files.requests} <= public
    for request in files.requests:
        assert set(request.headers) <= {"Host", "Accept-Encoding", "Range"}, request.headers


@pytest.fixture
def mirrored(sqlite_server, tmp_path):
    """A phone that heard a case, the case's batch in a mirror tree, and that tree served over HTTPS."""
    case, contact = phone(tmp_path, "case"), phone(tmp_path, "contact")
    key_for_day(case, interval_number(MEETING))
    meet(case, contact, MEETING, 20)
    diagnose_and_share(sqlite_server, case)
    write_tree(sqlite_server, tmp_path / "tree")
    with HttpsFiles(tmp_path / "tree", sqlite_server.tls_dir) as files:
        yield sqlite_server, contact, files, tmp_path / "tree"


def batch_file(tree: Path, sequence: int = 1) -> Path:
    [entry] = [f for f in index_of(tree).files if f.sequence == sequence]
    return tree / entry.name


def test_a_tampered_batch_file_is_refused_and_never_used(mirrored):
    server, contact, files, tree = mirrored
    path = batch_file(tree)
    flip_byte(path, path.stat().st_size - 5)
    report = mirror_sync(files, contact, server.tls_dir)
    assert report.new_batches == [] and report.refused == [
        (1, "batch 1 refused: SHA-256 of the file differs from the index's")
    ]
    assert contact.batches() == [] and check(contact) == []


def test_a_truncated_batch_file_is_refused_saying_how_much_arrived(mirrored):
    server, contact, files, tree = mirrored
    path = batch_file(tree)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size - 100])
    report = mirror_sync(files, contact, server.tls_dir)
    assert report.refused == [(1, f"batch 1 refused: the file is truncated or too long: {size - 100} of {size} bytes")]
    assert contact.batches() == []


def test_an_index_signed_by_another_key_is_refused_and_nothing_is_fetched(mirrored, tmp_path):
    server, contact, files, tree = mirrored
    other = matcher("certs", "--out", str(tmp_path / "other"))
    assert other.returncode == 0
    matcher(
        "mirror",
        "--store",
        server.store,
        "--tls-dir",
        str(tmp_path / "other" / "server"),
        "--out",
        str(tmp_path / "rogue"),
        "--now",
        str(NOW + 86400),
    )
    shutil.copy(tmp_path / "rogue" / INDEX_NAME, tree / INDEX_NAME)
    report = mirror_sync(files, contact, server.tls_dir)
    [(_, message)] = report.refused
    assert "not one of the pinned keys" in message and report.new_batches == []
    assert [r.path for r in files.requests] == ["/" + INDEX_NAME]


def test_an_older_index_is_refused_as_a_replay_and_the_batches_held_stay(mirrored, tmp_path):
    server, contact, files, tree = mirrored
    older = (tree / INDEX_NAME).read_bytes()
    assert mirror_sync(files, contact, server.tls_dir).new_batches == [1]
    server.authority_stub().SubmitKeys(
        authority_pb2.SubmitKeysRequest(submission_id="second", keys=[diagnosis_key(7)]), timeout=10
    )
    publish(server, now=NOW + 2 * 86400)
    write_tree(server, tree, now=NOW + 2 * 86400)
    assert mirror_sync(files, contact, server.tls_dir).new_batches == [2]

    (tree / INDEX_NAME).write_bytes(older)  # a stale CDN edge, or an attacker, serving yesterday's index
    report = mirror_sync(files, contact, server.tls_dir)
    [(_, message)] = report.refused
    assert message.startswith("mirror index refused: written at") and message.endswith("a replay")
    assert [b.sequence for b in contact.batches()] == [1, 2] and contact.cursor() == 2


def test_a_download_cut_by_the_network_is_resumed_with_a_range_request(mirrored):
    server, contact, files, tree = mirrored
    path = batch_file(tree)
    files.cut_once["/" + path.relative_to(tree).as_posix()] = 300
    cut = mirror_sync(files, contact, server.tls_dir)
    assert cut.new_batches == [] and cut.refused == [] and "the next sync resumes it" in cut.interrupted
    resumed = mirror_sync(files, contact, server.tls_dir)
    assert resumed.new_batches == [1] and not resumed.refused
    assert files.requests[-1].headers.get("Range") == "bytes=300-"
    assert [day.alert for day in check(contact)] == [True]


def test_files_leave_the_index_after_the_retention_window_and_the_tree_one_index_later(sqlite_server, tmp_path):
    sqlite_server.authority_stub().SubmitKeys(
        authority_pb2.SubmitKeysRequest(submission_id="only", keys=[diagnosis_key(3)]), timeout=10
    )
    [batch] = publish(sqlite_server, now=NOW + 86400)
    tree = tmp_path / "tree"
    write_tree(sqlite_server, tree)
    name = batch_file(tree).relative_to(tree).as_posix()
    expired_at = NOW + 86400 + RETENTION
    first = write_tree(sqlite_server, tree, now=expired_at)
    assert first["files"] == 0 and first["removed"] == [] and (tree / name).is_file()  # the last index named it
    second = write_tree(sqlite_server, tree, now=expired_at + 60)
    assert second["removed"] == [name] and not (tree / name).exists()
    assert list(index_of(tree).files) == [] and index_of(tree).newest_sequence == batch["sequence"]
    assert open_store(sqlite_server.store).last_sequence() == batch["sequence"]
