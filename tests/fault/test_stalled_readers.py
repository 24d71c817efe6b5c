"""Phones that open downloads and never read them cannot lock authorities out: the authority port has its own
threads, so submissions and codes go through while every public worker is stuck in a send."""

from __future__ import annotations

from pathlib import Path

import grpc

from clients.launch import Server
from exposure.v1 import authority_pb2, distribution_pb2, distribution_pb2_grpc
from matcher.model import MAX_KEYS_PER_SUBMISSION, ReportType
from tests.integration.harness import NOW, start_server
from tests.integration.test_service import diagnosis_key, publish

STALLED_STREAMS = 50
CHANNELS = 5  # the stalled phones use several connections, as a botnet would
BATCH_KEYS = 2_400  # a body of about 1.2 MB: many windows' worth, so that a stream that is never read blocks


def key(n: int):
    return diagnosis_key(0, key_data=n.to_bytes(16, "big"))


def small_server(pki: Path, folder: Path, calls: int, *extra: str) -> Server:
    """One server process on SQLite with two worker threads and at most ``calls`` calls held on the public port."""
    return start_server(
        pki,
        f"sqlite:{folder / 'service.db'}",
        "--now",
        str(NOW),
        "--workers",
        "2",
        "--max-calls",
        str(calls),
        "--processes",
        "1",
        *extra,
        log=folder / "serve.log",
    )


def publish_a_large_batch(server: Server) -> dict:
    """BATCH_KEYS keys pushed by an authority and cut into one batch: its entry in `matcher publish --json`."""
    authority = server.authority_stub()
    for first in range(0, BATCH_KEYS, MAX_KEYS_PER_SUBMISSION):
        keys = [key(n) for n in range(first, first + MAX_KEYS_PER_SUBMISSION)]
        authority.SubmitKeys(authority_pb2.SubmitKeysRequest(submission_id=f"bulk-{first}", keys=keys), timeout=30)
    [batch] = publish(server, now=NOW + 60)
    return batch


def test_fifty_downloads_that_never_read_leave_the_authority_port_serving(fault_pki, tmp_path):
    # At most 8 calls held on the public port: 50 stalled streams fill it and both workers many times over.
    server = small_server(fault_pki, tmp_path, 8)
    try:
        authority = server.authority_stub()
        batch = publish_a_large_batch(server)

        channels = [server.public_channel() for _ in range(CHANNELS)]
        request = distribution_pb2.DownloadBatchRequest(sequence=batch["sequence"], chunk_size=1)
        stalled = [
            distribution_pb2_grpc.DistributionStub(channels[n % CHANNELS]).DownloadBatch(request, timeout=600)
            for n in range(STALLED_STREAMS)
        ]  # started, and never read

        # An authority's calls get through within their normal deadline, however long the phones stall.
        for n in range(3):
            code = authority.IssueCode(
                authority_pb2.IssueCodeRequest(report_type=ReportType.CONFIRMED_TEST), timeout=10
            )
            assert code.code
            answer = authority.SubmitKeys(
                authority_pb2.SubmitKeysRequest(submission_id=f"after-{n}", keys=[key(BATCH_KEYS + n)]), timeout=10
            )
            assert answer.accepted == 1
        for stream in stalled:
            stream.cancel()
        # Past the public port's 8 calls, the stalled phones' own streams were the ones refused.
        assert {stream.code() for stream in stalled} <= {grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED}
    finally:
        server.stop()
