"""The public port's limit on uploads, per connection, against the real server over TLS."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from clients.launch import Server
from exposure.v1 import sharing_pb2, sharing_pb2_grpc
from tests.integration.harness import NOW, start_server
from tests.integration.test_service import diagnosis_key, issue_code

PER_MINUTE = 5


@pytest.fixture
def limited_server(pki, tmp_path) -> Iterator[Server]:
    running = start_server(
        pki,
        f"sqlite:{tmp_path / 'service.db'}",
        "--now",
        str(NOW),
        "--uploads-per-minute",
        str(PER_MINUTE),
        log=tmp_path / "serve.log",
    )
    yield running
    running.stop()


def retry_delay(error: grpc.RpcError) -> float | None:
    for detail in rpc_status.from_call(error).details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


def test_a_burst_of_uploads_on_one_connection_is_limited_while_another_connection_still_shares(limited_server):
    # A channel of its own subchannel pool: a connection of its own, whatever grpcio would otherwise share.
    def connection() -> sharing_pb2_grpc.SharingStub:
        channel = limited_server.public_channel(options=[("grpc.use_local_subchannel_pool", 1)])
        return sharing_pb2_grpc.SharingStub(channel)

    burst = connection()
    made_up = sharing_pb2.SubmitWithCodeRequest(code="2345-6789-ABCD", keys=[diagnosis_key(1)])
    codes = []
    for _ in range(PER_MINUTE):
        with pytest.raises(grpc.RpcError) as refused:
            burst.SubmitWithCode(made_up, timeout=10)
        codes.append(refused.value.code())
    assert codes == [grpc.StatusCode.PERMISSION_DENIED] * PER_MINUTE
    with pytest.raises(grpc.RpcError) as limited:
        burst.SubmitWithCode(made_up, timeout=10)
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert limited.value.details().startswith(
        f"too many uploads on this connection: at most {PER_MINUTE} a minute; retry in"
    )
    assert 0 < retry_delay(limited.value) <= 60 / PER_MINUTE

    other = connection()
    code = issue_code(limited_server).code
    assert (
        other.SubmitWithCode(sharing_pb2.SubmitWithCodeRequest(code=code, keys=[diagnosis_key(2)]), timeout=10).accepted
        == 1
    )
    log = limited_server.log_text()
    assert "127.0.0.1" not in log and "ipv4" not in log  # the connection's address is never logged
