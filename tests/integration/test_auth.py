"""Authentication and authorisation, as a table: who may call what, on which port, with which certificate."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from pathlib import Path

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from clients.launch import authorities_file, make_pki
from exposure.v1 import authority_pb2, authority_pb2_grpc, distribution_pb2, sharing_pb2
from matcher import crypto
from matcher.batches import match, open_body, open_header
from matcher.certs import issue, new_ca, write_pair
from matcher.exposure_config import default_config
from matcher.model import ReportType
from tests.integration.harness import NOW, start_server
from tests.integration.test_service import diagnosis_key, download, publish, trusted


def _ca_of(pki: Path, stem: str = "authority-ca"):
    cert = x509.load_pem_x509_certificate((pki / "ca" / f"{stem}.pem").read_bytes())
    key = serialization.load_pem_private_key((pki / "ca" / f"{stem}.key").read_bytes(), password=None)
    return cert, key


@pytest.fixture(scope="module")
def strangers(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates the server must refuse: one from another CA, one from the server CA (which signs only the
    server's), one expired from the right CA, a valid one from the right CA for a name the authorities file never
    had, and a valid one from the right CA with an authority's name but not the certificate the file pins."""
    folder = tmp_path_factory.mktemp("strangers")
    other_cert, other_key = new_ca("some other CA")
    write_pair(folder, "other-ca", *issue(other_cert, other_key, "ha-north", client=True))
    ca_cert, ca_key = _ca_of(pki)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    write_pair(folder, "expired", *issue(ca_cert, ca_key, "ha-north", client=True, not_before=long_ago, days=1))
    write_pair(folder, "ha-unknown", *issue(ca_cert, ca_key, "ha-unknown", client=True))
    write_pair(folder, "ha-north-twin", *issue(ca_cert, ca_key, "ha-north", client=True))
    write_pair(folder, "server-ca", *issue(*_ca_of(pki, "server-ca"), "ha-north", client=True))
    return folder


def submit_request(region: str = "VN", report_type: int = ReportType.CONFIRMED_TEST, submission_id: str = "auth-1"):
    return authority_pb2.SubmitKeysRequest(
        submission_id=submission_id, region=region, keys=[diagnosis_key(1, report_type=report_type)]
    )


def on_public_port(server, strangers):
    return authority_pb2_grpc.AuthorityStub(server.public_channel())


def without_certificate(server, strangers):
    credentials = grpc.ssl_channel_credentials(root_certificates=(server.phone_dir / "ca.pem").read_bytes())
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


def submit_keys(stub, **kw):
    return stub.SubmitKeys(submit_request(**kw), timeout=10)


# --- one-time codes: the phone's side. A code is the whole authorisation of an upload, bound to the authority that
# issued it: its region and its diagnosis, never the phone's choice. Authorities never see or redeem codes (there
# is no call for it); what could go wrong is a phone's upload landing where the code does not say.


def as_phone(server, strangers):
    return server


def issue_code(server, authority: str, **fields) -> str:
    request = authority_pb2.IssueCodeRequest(**{"report_type": ReportType.CONFIRMED_TEST, **fields})
    return server.authority_stub(authority).IssueCode(request, timeout=10).code


def upload(server, code: str, *keys):
    return server.sharing_stub().SubmitWithCode(sharing_pb2.SubmitWithCodeRequest(code=code, keys=keys), timeout=10)


def reuse_a_code(server):
    code = issue_code(server, "ha-north")
    assert upload(server, code, diagnosis_key(1)).accepted == 1
    upload(server, code, diagnosis_key(2))  # another upload with the same code


def use_another_authoritys_code(server):
    """Whoever hands a phone ha-south's code, the upload is ha-south's: accepted for TH (see the test below)."""
    upload(server, issue_code(server, "ha-south", region="TH"), diagnosis_key(3))


def use_a_made_up_code(server):
    upload(server, "2345-6789-ABCD", diagnosis_key(4))


CASES = [
    # (who, what, expected)
    ("an authority method on the public port", on_public_port, submit_keys, {}, grpc.StatusCode.UNAUTHENTICATED),
    ("no client certificate on the authority port", without_certificate, submit_keys, {}, grpc.StatusCode.UNAVAILABLE),
    ("a plain-text connection to the authority port", plain_text, submit_keys, {}, grpc.StatusCode.UNAVAILABLE),
    ("a plain-text connection to the public port", plain_text_public, submit_keys, {}, grpc.StatusCode.UNAVAILABLE),
    (
        "a certificate from another CA",
        as_authority("other-ca", "strangers"),
        submit_keys,
        {},
        grpc.StatusCode.UNAVAILABLE,
    ),
    ("an expired certificate", as_authority("expired", "strangers"), submit_keys, {}, grpc.StatusCode.UNAVAILABLE),
    (
        "an authority's name on a certificate from the server CA (it signs only the server's)",
        as_authority("server-ca", "strangers"),
        submit_keys,
        {},
        grpc.StatusCode.UNAVAILABLE,
    ),
    (
        "an authority's name on a certificate from the right CA that the authorities file does not pin",
        as_authority("ha-north-twin", "strangers"),
        submit_keys,
        {},
        grpc.StatusCode.UNAUTHENTICATED,
    ),
    (
        "a revoked authority (valid certificate, not in the authorities file)",
        as_authority("ha-revoked"),
        submit_keys,
        {},
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    (
        "an authority submitting for a region it may not",
        as_authority("ha-south"),
        submit_keys,
        {"region": "VN"},
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    (
        "an authority submitting a report type it may not",
        as_authority("ha-south"),
        submit_keys,
        {"region": "TH", "report_type": ReportType.SELF_REPORT},
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    (
        "an authority changing the configuration when it may not",
        as_authority("ha-south"),
        lambda stub: stub.SetExposureConfig(
            authority_pb2.SetExposureConfigRequest(config=default_config()), timeout=10
        ),
        {},
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    (
        "an authority issuing a code for a region it may not",
        as_authority("ha-south"),
        lambda stub: stub.IssueCode(authority_pb2.IssueCodeRequest(report_type=1, region="VN"), timeout=10),
        {},
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    (
        "an unknown authority (a valid certificate from our CA, a name never configured)",
        as_authority("ha-unknown", "strangers"),
        submit_keys,
        {},
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    (
        "an authority issuing a code for a report type it may not",
        as_authority("ha-south"),
        lambda stub: stub.IssueCode(
            authority_pb2.IssueCodeRequest(report_type=ReportType.SELF_REPORT, region="TH"), timeout=10
        ),
        {},
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    ("a phone using a code a second time", as_phone, reuse_a_code, {}, grpc.StatusCode.PERMISSION_DENIED),
    ("a phone using a code no authority issued", as_phone, use_a_made_up_code, {}, grpc.StatusCode.PERMISSION_DENIED),
    (
        "a phone using a code of another authority (the upload is that authority's)",
        as_phone,
        use_another_authoritys_code,
        {},
        grpc.StatusCode.OK,
    ),
    ("an allowed authority", as_authority("ha-north"), submit_keys, {}, grpc.StatusCode.OK),
    (
        "another allowed authority within its rights",
        as_authority("ha-south"),
        submit_keys,
        {"region": "TH"},
        grpc.StatusCode.OK,
    ),
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
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    stub = server.authority_stub("ha-south")
    for n in range(2):
        stub.SubmitKeys(submit_request(region="TH", submission_id=f"rate-{n}"), timeout=10)
    with pytest.raises(grpc.RpcError) as raised:
        stub.SubmitKeys(submit_request(region="TH", submission_id="rate-2"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in rpc_status.from_call(raised.value).details)
    assert retry.retry_delay.ToNanoseconds() > 0


def test_codes_an_authority_issues_take_from_the_same_rate_limit_as_its_submissions(server):
    stub = server.authority_stub("ha-south")  # two a minute
    code = authority_pb2.IssueCodeRequest(
        region="TH", report_type=ReportType.CONFIRMED_TEST, symptom_onset_date="2026-11-19"
    )
    stub.IssueCode(code, timeout=10)
    stub.IssueCode(code, timeout=10)
    for over in (
        lambda: stub.IssueCode(code, timeout=10),
        lambda: stub.SubmitKeys(submit_request(region="TH", submission_id="after-two-codes"), timeout=10),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            over()
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "over its limit of 2 submissions a minute" in raised.value.details()


def test_keys_shared_with_a_code_are_published_for_the_region_and_diagnosis_of_the_authority_that_issued_it(server):
    south = issue_code(server, "ha-south", region="TH")
    north = issue_code(server, "ha-north", report_type=ReportType.SELF_REPORT)
    assert upload(server, south, diagnosis_key(1, report_type=ReportType.CONFIRMED_CLINICAL_DIAGNOSIS)).accepted == 1
    assert upload(server, north, diagnosis_key(2)).accepted == 1
    publish(server)
    listing = server.distribution_stub().ListBatches(distribution_pb2.ListBatchesRequest(), timeout=10)
    published = {
        (h.region, tuple(s.report_types))
        for h in (open_header(b, trusted(server)) for b in listing.batches)
        for s in h.sections
    }
    tests_and_diagnoses = (ReportType.CONFIRMED_TEST, ReportType.CONFIRMED_CLINICAL_DIAGNOSIS)  # weighed alike
    assert published == {("TH", tests_and_diagnoses), ("VN", (ReportType.SELF_REPORT,))}


def test_a_code_of_an_authority_revoked_since_it_was_issued_is_refused_and_stays_unused(pki, store_url, tmp_path):
    shutil.copytree(pki, tmp_path / "tls")
    tls = make_pki(tmp_path / "tls", "ha-gone")
    policies = json.loads(authorities_file(tls).read_text())

    def serve(log: str):
        authorities_file(tls).write_text(json.dumps(policies))
        return start_server(tls, store_url, "--now", str(NOW), log=tmp_path / log)

    before = serve("before.log")
    try:
        code = issue_code(before, "ha-gone")
    finally:
        before.stop()
    gone = policies["authorities"].pop("ha-gone")
    revoked = serve("revoked.log")
    try:
        with pytest.raises(grpc.RpcError) as raised:
            upload(revoked, code, diagnosis_key(1))
        with pytest.raises(grpc.RpcError) as unknown:
            upload(revoked, "2345-6789-ABCD", diagnosis_key(1))
        # One refusal for every reason: a caller cannot tell a revoked authority's live code from no code at all.
        assert raised.value.code() == unknown.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert raised.value.details() == unknown.value.details()
    finally:
        revoked.stop()
    policies["authorities"]["ha-gone"] = gone  # re-admitted: the refused upload did not use the code up
    again = serve("again.log")
    try:
        assert upload(again, code, diagnosis_key(1)).accepted == 1
    finally:
        again.stop()


def test_contact_intervals_are_published_only_for_an_authority_that_chose_them(pki, store_url, tmp_path):
    shutil.copytree(pki, tmp_path / "tls")
    tls = make_pki(tmp_path / "tls", "ha-prunes")
    policies = json.loads(authorities_file(tls).read_text())
    policies["authorities"]["ha-prunes"]["contact_intervals_only"] = True
    authorities_file(tls).write_text(json.dumps(policies))
    bitmap = (0b111 << 60).to_bytes(18, "little")  # intervals 60, 61 and 62 of the key's day
    server = start_server(tls, store_url, "--now", str(NOW), log=tmp_path / "serve.log")
    try:
        pruned = diagnosis_key(1, contact_intervals=bitmap)
        assert upload(server, issue_code(server, "ha-prunes"), pruned).accepted == 1
        ignored = diagnosis_key(2, contact_intervals=bitmap)
        assert upload(server, issue_code(server, "ha-north"), ignored).accepted == 1
        [batch] = publish(server)
        assert batch["elements"] == 3 + 144  # the pruned key's three intervals; the other key's whole day
        listing = server.distribution_stub().ListBatches(distribution_pb2.ListBatchesRequest(), timeout=10)
        header = open_header(listing.batches[0], trusted(server))
        sections = open_body(header, download(server.distribution_stub(), header.sequence))
        start = pruned.rolling_start_interval_number
        heard_at = (start + np.arange(144)) * 600 + 300
        found = match(header, sections, crypto.rpis(pruned.key_data, start, 144), heard_at)
        assert np.flatnonzero(found.section >= 0).tolist() == [60, 61, 62]
    finally:
        server.stop()


def test_a_made_up_code_is_refused_without_a_write_while_another_process_holds_the_write_lock(pki, tmp_path):
    # A refused upload must cost no write transaction: on SQLite one writer at a time, so that a flood of made-up
    # codes on the public port would queue every authority's submission behind it.
    database = tmp_path / "service.db"
    server = start_server(pki, f"sqlite:{database}", "--now", str(NOW), log=tmp_path / "serve.log")
    writer = sqlite3.connect(database, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # as a `matcher publish` or a backup would, for as long as it likes
        with pytest.raises(grpc.RpcError) as raised:
            upload(server, "2345-6789-ABCD", diagnosis_key(1))
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED, raised.value.details()
    finally:
        writer.rollback()
        writer.close()
        server.stop()
