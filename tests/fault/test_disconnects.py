"""Clients that go away in the middle: download streams cancelled after a few chunks, channels closed under a
running stream, calls cancelled or timed out before an answer, TLS handshakes cut short. Hundreds of them, from
several threads. The server keeps answering, its threads and open files do not grow from one such storm to the
next, and a download afterwards is byte-identical to one made before and verifies."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from concurrent import futures
from pathlib import Path

import grpc

from clients.launch import Server
from exposure.v1 import authority_pb2_grpc, batch_pb2, distribution_pb2, distribution_pb2_grpc
from matcher.batches import open_body, open_header
from matcher.signing import TrustedKeys, load_verifying_key
from matcher.store import open_store
from tests.fault.test_crashes import fill
from tests.integration.harness import NOW, start_server
from tests.integration.test_service import download, publish
from tests.support.submitters import SERVING, submission, threads_of, wait_for_health

WORKERS = 8  # the server's gRPC worker threads in this test
STORM_CALLS = 240
NOISE = 6
FILES_PER_CONNECTION = 3  # an SQLite connection in WAL mode holds the database, its -wal and its -shm open


def open_files(pid: int) -> dict[str, str]:
    """What each open file descriptor of the process points at (Linux /proc)."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):  # closed while listing
            found[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
    return found


def cancelled_stream(server: Server, channel: grpc.Channel, rng: random.Random) -> None:
    stub = distribution_pb2_grpc.DistributionStub(channel)
    stream = stub.DownloadBatch(distribution_pb2.DownloadBatchRequest(sequence=1, chunk_size=4096), timeout=30)
    for n, _ in enumerate(stream):
        if n >= rng.randint(0, 3):
            break
    stream.cancel()


def channel_closed_under_a_stream(server: Server, channel: grpc.Channel, rng: random.Random) -> None:
    own = server.public_channel()
    stream = distribution_pb2_grpc.DistributionStub(own).DownloadBatch(
        distribution_pb2.DownloadBatchRequest(sequence=1, chunk_size=8192), timeout=30
    )
    next(stream)
    own.close()


def call_cancelled_before_the_answer(server: Server, channel: grpc.Channel, rng: random.Random) -> None:
    stub = distribution_pb2_grpc.DistributionStub(channel)
    call = rng.choice(
        [
            lambda: stub.ListBatches.future(distribution_pb2.ListBatchesRequest(), timeout=30),
            lambda: stub.GetExposureConfig.future(distribution_pb2.GetExposureConfigRequest(), timeout=30),
        ]
    )()
    call.cancel()


def call_past_its_deadline(server: Server, channel: grpc.Channel, rng: random.Random) -> None:
    stub = distribution_pb2_grpc.DistributionStub(channel)
    try:
        b"".join(c.data for c in stub.DownloadBatch(distribution_pb2.DownloadBatchRequest(sequence=1), timeout=0.002))
    except grpc.RpcError as error:
        assert error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED), error


def handshake_cut_short(server: Server, channel: grpc.Channel, rng: random.Random) -> None:
    host, _, port = server.public.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(rng.randint(0, 64)))


ABANDONMENTS = [
    cancelled_stream,
    channel_closed_under_a_stream,
    call_cancelled_before_the_answer,
    call_past_its_deadline,
    handshake_cut_short,
]


def storm(server: Server, seed: int) -> None:
    shared = server.public_channel()

    def one(n: int) -> None:
        rng = random.Random(seed * 100_000 + n)
        ABANDONMENTS[n % len(ABANDONMENTS)](server, shared, rng)

    with futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(STORM_CALLS)))
    shared.close()
    check = server.public_channel()
    wait_for_health(check, SERVING)
    check.close()  # so that the test's own connections do not count in the server's open files


def settled(measure, ceiling: int, timeout: float = 15.0) -> int:
    """The measure once it is at or below ``ceiling`` (connections and streams take a moment to be torn down)."""
    deadline = time.monotonic() + timeout
    value = measure()
    while value > ceiling and time.monotonic() < deadline:
        time.sleep(0.2)
        value = measure()
    return value


def test_clients_abandoning_calls_and_streams_leave_the_server_healthy_without_leaks_and_downloads_intact(
    fault_pki: Path, tmp_path: Path
):
    store_url = f"sqlite:{tmp_path / 'matcher.db'}"
    fill(open_store(store_url), 3000)
    server = start_server(
        fault_pki, store_url, "--now", str(NOW), "--workers", str(WORKERS), log=tmp_path / "serve.log"
    )
    try:
        [batch] = publish(server)
        phones = server.distribution_stub()
        before = download(phones, 1)
        assert len(before) == batch["body_bytes"] > 1 << 20
        # Every process of the service: `matcher serve` and the server processes it forked (--processes).
        pids = server.pids()
        assert len(pids) == 1 + (os.cpu_count() or 1)

        def other_files(pid: int) -> dict[str, str]:
            return {fd: to for fd, to in open_files(pid).items() if not to.startswith(database)}

        def database_files(pid: int) -> int:
            return sum(to.startswith(database) for to in open_files(pid).values())

        database = str(tmp_path / "matcher.db")
        storm(server, seed=1)
        threads, files = {p: threads_of(p) for p in pids}, {p: other_files(p) for p in pids}
        storm(server, seed=2)
        # Threads and files come and go a little (grpcio sizes its own thread pool); a leak of anything per
        # abandoned call would add hundreds. SQLite files are counted apart: a thread opens its connection the first
        # time it is used, which with the calls spread over several processes may be in either storm, so they are
        # held to what one connection a thread allows.
        for pid in pids:
            assert settled(lambda: threads_of(pid), threads[pid] + NOISE) <= threads[pid] + NOISE
            left = settled(lambda: len(other_files(pid)), len(files[pid]) + NOISE)
            assert left <= len(files[pid]) + NOISE, {
                fd: to for fd, to in other_files(pid).items() if files[pid].get(fd) != to
            }
            assert database_files(pid) <= FILES_PER_CONNECTION * threads_of(pid)

        listing = phones.ListBatches(distribution_pb2.ListBatchesRequest(), timeout=10)
        trusted = TrustedKeys([load_verifying_key(fault_pki / "server" / "signing.pub.pem")])
        header = open_header(batch_pb2.SignedBatchHeader.FromString(listing.batches[0].SerializeToString()), trusted)
        after = download(phones, 1)
        assert after == before and len(open_body(header, after)) == len(header.sections)
        stub = authority_pb2_grpc.AuthorityStub(server.authority_channel("ha-north"))
        assert stub.SubmitKeys(submission("after-the-storm"), timeout=10).accepted == 2
        assert "Traceback" not in server.log_text()
    finally:
        server.stop()
