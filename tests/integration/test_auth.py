"""Authentication and authorisation, as a table: who may call what, on which port, with which certificate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from exposure.v1 import authority_pb2, authority_pb2_grpc
from matcher.certs import issue, new_ca, write_pair
from matcher.errors import violations_of  # noqa: F401 - imported for symmetry with other service tests
from matcher.exposure_config import default_config
from matcher.model import ReportType
from tests.integration.test_service import diagnosis_key


def _ca_of(pki: Path):
    cert = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    return cert, key


@pytest.fixture(scope="module")
def strangers(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates the server must refuse: one from another CA, one expired from the right CA."""
    folder = tmp_path_factory.mktemp("strangers")
    other_cert, other_key = new_ca("some other CA")
    write_pair(folder, "other-ca", *issue(other_cert, other_key, "ha-north", client=True))
    ca_cert, ca_key = _ca_of(pki)
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    write_pair(folder, "expired", *issue(ca_cert, ca_key, "ha-north", client=True, not_before=long_ago, days=1))
    return folder


def submit_request(region: str = "VN", report_type: int = ReportType.CONFIRMED_TEST, submission_id: str = "auth-1"):
    return authority_pb2.SubmitKeysRequest(
        submission_id=submission_id, region=region, keys=[diagnosis_key(1, report_type=report_type)]
    )


def on_public_port(server, strangers):
    return authority_pb2_grpc.AuthorityStub(server.public_channel())


def without_certificate(server, strangers):
    credentials = grpc.ssl_channel_credentials(root_certificates=(server.tls_dir / "ca.pem").read_bytes())
    return authority_pb2_grpc.AuthorityStub(server._keep(grpc.secure_channel(server.authority, credentials)))


def plain_text(server, strangers):
    return authority_pb2_grpc.AuthorityStub(server._keep(grpc.insecure_channel(server.authority)))


def plain_text_public(server, strangers):
    return authority_pb2_grpc.AuthorityStub(server._keep(grpc.insecure_channel(server.public)))


def as_authority(name: str, folder: str | None = None):
    def make(server, strangers):
        return authority_pb2_grpc.AuthorityStub(
            server.authority_channel(name, tls_dir=strangers if folder == "strangers" else None)
        )

    return make


SUBMIT = lambda stub, **kw: stub.SubmitKeys(submit_request(**kw), timeout=10)  # noqa: E731

CASES = [
    # (who, what, expected)
    ("an authority method on the public port", on_public_port, SUBMIT, {}, grpc.StatusCode.UNAUTHENTICATED),
    ("no client certificate on the authority port", without_certificate, SUBMIT, {}, grpc.StatusCode.UNAVAILABLE),
    ("a plain-text connection to the authority port", plain_text, SUBMIT, {}, grpc.StatusCode.UNAVAILABLE),
    ("a plain-text connection to the public port", plain_text_public, SUBMIT, {}, grpc.StatusCode.UNAVAILABLE),
    ("a certificate from another CA", as_authority("other-ca", "strangers"), SUBMIT, {}, grpc.StatusCode.UNAVAILABLE),
    ("an expired certificate", as_authority("expired", "strangers"), SUBMIT, {}, grpc.StatusCode.UNAVAILABLE),
    ("a revoked authority (valid certificate, not in the authorities file)", as_authority("ha-revoked"), SUBMIT, {},
     grpc.StatusCode.PERMISSION_DENIED),
    ("an authority submitting for a region it may not", as_authority("ha-south"), SUBMIT, {"region": "VN"},
     grpc.StatusCode.PERMISSION_DENIED),
    ("an authority submitting a report type it may not", as_authority("ha-south"), SUBMIT,
     {"region": "TH", "report_type": ReportType.SELF_REPORT}, grpc.StatusCode.PERMISSION_DENIED),
    ("an authority changing the configuration when it may not", as_authority("ha-south"),
     lambda stub: stub.SetExposureConfig(authority_pb2.SetExposureConfigRequest(config=default_config()), timeout=10),
     {}, grpc.StatusCode.PERMISSION_DENIED),
    ("an authority issuing a code for a region it may not", as_authority("ha-south"),
     lambda stub: stub.IssueCode(authority_pb2.IssueCodeRequest(report_type=1, region="VN"), timeout=10), {},
     grpc.StatusCode.PERMISSION_DENIED),
    ("an allowed authority", as_authority("ha-north"), SUBMIT, {}, grpc.StatusCode.OK),
    ("another allowed authority within its rights", as_authority("ha-south"), SUBMIT, {"region": "TH"},
     grpc.StatusCode.OK),
]


@pytest.mark.parametrize("who, channel, call, fields, expected", CASES, ids=[c[0] for c in CASES])
def test_the_authentication_and_authorisation_matrix(server, strangers, who, channel, call, fields, expected):
    stub = channel(server, strangers)
    try:
        call(stub, **fields)
        code = grpc.StatusCode.OK
    except grpc.RpcError as error:
        code = error.code()
    assert code == expected, who


def test_an_authority_over_its_rate_limit_is_told_when_to_retry(server):
    from grpc_status import rpc_status
    from google.rpc import error_details_pb2

    stub = server.authority_stub("ha-south")
    for n in range(2):
        stub.SubmitKeys(submit_request(region="TH", submission_id=f"rate-{n}"), timeout=10)
    with pytest.raises(grpc.RpcError) as raised:
        stub.SubmitKeys(submit_request(region="TH", submission_id="rate-2"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in rpc_status.from_call(raised.value).details)
    assert retry.retry_delay.ToNanoseconds() > 0
