"""A download that is never read cannot hold a worker for longer than --download-seconds: the server cancels the
stream itself, so a port filled with stalled phones serves again without anyone's help."""

from __future__ import annotations

import time

import grpc
import pytest

from exposure.v1 import distribution_pb2, distribution_pb2_grpc
from matcher.distribution import MIN_CHUNK_BYTES
from tests.fault.test_stalled_readers import publish_a_large_batch, small_server

CALLS = 2  # the public port's whole capacity (and its worker threads), held by stalled downloads
DOWNLOAD_SECONDS = 8  # long enough for the refusal below to be seen on a busy machine
PATIENCE_SECONDS = 60  # how long the test waits for the server to free its port before calling it stuck
# A phone whose receive window stays at 64 KiB (no growth by bandwidth probing), so that a stream it does not
# read fills its window at once and the server's send waits, as a phone that stopped reading would make it.
NEVER_READING = [
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 65_536),
]


def test_downloads_that_are_never_read_are_cancelled_by_the_server_and_free_the_port(fault_pki, tmp_path):
    server = small_server(fault_pki, tmp_path, CALLS, "--download-seconds", str(DOWNLOAD_SECONDS))
    try:
        batch = publish_a_large_batch(server)

        # Small chunks: a sender that waits for the reader after each one, rather than one that hands grpc the body.
        request = distribution_pb2.DownloadBatchRequest(sequence=batch["sequence"], chunk_size=MIN_CHUNK_BYTES)
        # The reading phone connects first, so that nothing slow stands between the port filling and its call.
        phone_channel = server.public_channel()
        grpc.channel_ready_future(phone_channel).result(timeout=30)
        phone = distribution_pb2_grpc.DistributionStub(phone_channel)
        stalled_phone = distribution_pb2_grpc.DistributionStub(server.public_channel(options=NEVER_READING))
        stalled = []
        for _ in range(CALLS):
            stalled.append(stalled_phone.DownloadBatch(request, timeout=600))
            next(stalled[-1])  # the server has taken the call (the first chunk came); nothing more is read
        listing = distribution_pb2.ListBatchesRequest(after_sequence=0)

        # Until the server's limit strikes, the port is full and refuses a phone that would read.
        with pytest.raises(grpc.RpcError) as refused:
            phone.ListBatches(listing, timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        # Then the server cancels the stalled streams, and the same phone is answered.
        deadline = time.monotonic() + PATIENCE_SECONDS
        answer = None
        while answer is None and time.monotonic() < deadline:
            try:
                answer = phone.ListBatches(listing, timeout=10)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
                time.sleep(0.2)
        assert answer is not None, f"the port was still full {PATIENCE_SECONDS} s after --download-seconds"
        assert len(answer.batches) == 1
        for stream in stalled:
            try:
                for _ in stream:
                    pass  # the chunks sent before the cancellation, then the status
            except grpc.RpcError:
                pass
            assert stream.code() == grpc.StatusCode.CANCELLED
    finally:
        server.stop()
