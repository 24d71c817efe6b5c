"""The real service over real TLS, on SQLite and on Redis: every RPC's success path and its refusals.

Stories: an authority pushes keys, a batch is cut by `matcher publish`, a phone lists, downloads (resuming a
cut download), verifies and matches; a patient uploads with a one-time code; the configuration is changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from clients.launch import matcher
from exposure.v1 import authority_pb2, distribution_pb2, keys_pb2, sharing_pb2
from matcher import codes, crypto
from matcher.batches import match, open_body, open_header
from matcher.distribution import MIN_CHUNK_BYTES
from matcher.errors import violations_of
from matcher.exposure_config import default_config, open_config
from matcher.fprate import error_rate_for
from matcher.model import ReportType
from matcher.signing import TrustedKeys, load_verifying_key
from tests.integration.harness import NOW, PUBLISH_EVERY_CASE, TODAY

LATER = NOW + 2 * 86400  # when every key submitted at NOW is past its embargo


def tek(n: int) -> bytes:
    return bytes([n]) * 16


def diagnosis_key(n: int, day: int = 1, **fields) -> keys_pb2.DiagnosisKey:
    """The key of person ``n`` for the day ``day`` days before today."""
    values = {
        "key_data": tek(n),
        "rolling_start_interval_number": TODAY - 144 * day,
        "rolling_period": 144,
        "report_type": ReportType.CONFIRMED_TEST,
        "days_since_onset_of_symptoms": 0,
    }
    values.update(fields)
    return keys_pb2.DiagnosisKey(**values)


def submit(stub, *keys, submission_id="s-1", region="VN", **kwargs):
    return stub.SubmitKeys(
        authority_pb2.SubmitKeysRequest(submission_id=submission_id, region=region, keys=keys), timeout=10, **kwargs
    )


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


def publish(server, now: int = LATER) -> list[dict]:
    """`matcher publish` on the server's store, holding nothing back: the batches it cut."""
    store = server.store
    result = matcher(
        "publish", "--store", store, "--tls-dir", str(server.tls_dir), "--now", str(now), "--json", *PUBLISH_EVERY_CASE
    )
    return json.loads(result.stdout)["batches"]


def download(stub, sequence: int, offset: int = 0, chunk_size: int = 0) -> bytes:
    request = distribution_pb2.DownloadBatchRequest(sequence=sequence, offset=offset, chunk_size=chunk_size)
    return b"".join(chunk.data for chunk in stub.DownloadBatch(request, timeout=30))


def trusted(server) -> TrustedKeys:
    return TrustedKeys([load_verifying_key(server.tls_dir / "signing.pub.pem")])


# --- submission --------------------------------------------------------------------------------------------------


def test_an_authority_submission_stores_the_valid_keys_and_reports_the_others(server):
    response = submit(server.authority_stub(), diagnosis_key(1), diagnosis_key(2), diagnosis_key(3, key_data=b"x"))
    assert response.accepted == 2 and not response.replayed and response.embargoed == 0
    assert [(r.index, r.field) for r in response.rejected] == [(2, "keys[2].key_data")]
    assert "16 bytes" in response.rejected[0].reason


def test_a_repeated_submission_is_answered_as_the_first_time_and_stores_nothing_new(server):
    stub = server.authority_stub()
    first = submit(stub, diagnosis_key(1), diagnosis_key(2))
    again = submit(stub, diagnosis_key(1), diagnosis_key(2))
    assert again.replayed and again.accepted == first.accepted == 2
    [batch] = publish(server)
    assert batch["keys"] == 2


def test_the_same_submission_id_with_other_content_is_already_exists(server):
    stub = server.authority_stub()
    submit(stub, diagnosis_key(1))
    assert code_of(lambda: submit(stub, diagnosis_key(2))) == grpc.StatusCode.ALREADY_EXISTS


def test_a_submission_without_any_valid_key_is_invalid_argument_naming_each_field(server):
    with pytest.raises(grpc.RpcError) as raised:
        submit(server.authority_stub(), diagnosis_key(1, rolling_period=200), diagnosis_key(2, report_type=0))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(raised.value)] == ["keys[0].rolling_period", "keys[1].report_type"]
    assert publish(server) == []


def test_a_key_still_in_use_is_embargoed_until_it_has_expired(server):
    response = submit(server.authority_stub(), diagnosis_key(1, day=0))
    assert response.embargoed == 1
    assert publish(server, now=NOW) == []
    [batch] = publish(server, now=NOW + 86400)
    assert batch["keys_published"] == 1


# --- publication and distribution ---------------------------------------------------------------------------------


def test_a_phone_downloads_verifies_and_matches_a_published_batch(server):
    submit(server.authority_stub(), diagnosis_key(1), diagnosis_key(2, day=2, rolling_period=30))
    [published] = publish(server)
    stub = server.distribution_stub()
    listing = stub.ListBatches(distribution_pb2.ListBatchesRequest(after_sequence=0), timeout=10)
    assert [len(listing.batches), listing.more] == [1, False]
    header = open_header(listing.batches[0], trusted(server))
    assert header.sequence == published["sequence"] and header.region == "VN"
    # one batch cut this period: it gets the whole period's false-positive budget
    assert [s.hash_range for s in header.sections] == [174 * math.ceil(1 / error_rate_for())]
    sections = open_body(header, download(stub, header.sequence))

    start = TODAY - 144
    heard = crypto.rpis(tek(1), start, 144)[[10, 50]]
    never = crypto.rpis(tek(9), start, 144)[[10, 50]]
    rpis = np.concatenate([heard, never])
    heard_at = np.array([start + 10, start + 50, start + 10, start + 50]) * 600 + 300
    assert (match(header, sections, rpis, heard_at).section >= 0).tolist() == [True, True, False, False]


def published_body_of(server, keys: int) -> tuple[dict, bytes]:
    """A batch of ``keys`` keys (30 a submission) and its body."""
    stub = server.authority_stub()
    for first in range(0, keys, 30):
        submit(
            stub,
            *[diagnosis_key(0, key_data=n.to_bytes(16, "big")) for n in range(first, min(first + 30, keys))],
            submission_id=f"s-{first}",
        )
    [published] = publish(server)
    return published, download(server.distribution_stub(), published["sequence"])


def test_a_cut_download_resumes_from_its_offset_to_identical_bytes(server):
    published, whole = published_body_of(server, 300)
    assert len(whole) == published["body_bytes"] > 2 * MIN_CHUNK_BYTES

    stub = server.distribution_stub()
    stream = stub.DownloadBatch(
        distribution_pb2.DownloadBatchRequest(sequence=published["sequence"], chunk_size=MIN_CHUNK_BYTES), timeout=30
    )
    received = b""
    for chunk in stream:
        assert chunk.offset == len(received) and chunk.body_size == len(whole)
        received += chunk.data
        stream.cancel()  # the connection breaks after the first chunk
        break
    rest = download(stub, published["sequence"], offset=len(received), chunk_size=MIN_CHUNK_BYTES)
    assert 0 < len(received) < len(whole) and received + rest == whole


def test_a_chunk_size_below_the_floor_is_raised_to_it(server):
    # One message and one store read a byte made a 20 KB download take a worker 10 s: chunks have a floor.
    published, whole = published_body_of(server, 300)
    request = distribution_pb2.DownloadBatchRequest(sequence=published["sequence"], chunk_size=1)
    sizes = [len(c.data) for c in server.distribution_stub().DownloadBatch(request, timeout=30)]
    assert sizes[:-1] == [MIN_CHUNK_BYTES] * (len(sizes) - 1) and sum(sizes) == len(whole)


def test_downloads_are_chunked_at_one_mebibyte_at_most(server):
    submit(server.authority_stub(), *[diagnosis_key(n) for n in range(1, 4)])
    [published] = publish(server)
    request = distribution_pb2.DownloadBatchRequest(sequence=published["sequence"], chunk_size=10**9)
    chunks = list(server.distribution_stub().DownloadBatch(request, timeout=30))
    assert all(len(c.data) <= 1 << 20 for c in chunks)
    assert sum(len(c.data) for c in chunks) == published["body_bytes"]


def test_unknown_batches_offsets_past_the_end_and_huge_pages_are_refused(server):
    stub = server.distribution_stub()
    assert code_of(lambda: download(stub, 99)) == grpc.StatusCode.NOT_FOUND
    submit(server.authority_stub(), diagnosis_key(1))
    [published] = publish(server)
    past = published["body_bytes"] + 1
    assert code_of(lambda: download(stub, published["sequence"], offset=past)) == grpc.StatusCode.OUT_OF_RANGE
    huge = distribution_pb2.ListBatchesRequest(page_size=1001)
    assert code_of(lambda: stub.ListBatches(huge, timeout=10)) == grpc.StatusCode.INVALID_ARGUMENT


def test_batches_are_listed_in_pages_after_a_cursor(server):
    stub = server.authority_stub()
    for n in range(1, 4):
        submit(stub, diagnosis_key(n), submission_id=f"s-{n}")
        publish(server, now=LATER + n)
    distribution = server.distribution_stub()
    page = distribution.ListBatches(distribution_pb2.ListBatchesRequest(after_sequence=0, page_size=2), timeout=10)
    assert page.more and [open_header(b, trusted(server)).sequence for b in page.batches] == [1, 2]
    rest = distribution.ListBatches(distribution_pb2.ListBatchesRequest(after_sequence=2), timeout=10)
    assert not rest.more and [open_header(b, trusted(server)).sequence for b in rest.batches] == [3]


# --- exposure configuration ---------------------------------------------------------------------------------------


def test_phones_get_a_signed_default_configuration_and_authorities_can_change_it(server):
    distribution = server.distribution_stub()
    from exposure.v1 import distribution_pb2 as d

    first = open_config(distribution.GetExposureConfig(d.GetExposureConfigRequest(), timeout=10), trusted(server))
    assert (
        first.version == 1
        and first.minimum_weighted_minutes_per_day == default_config().minimum_weighted_minutes_per_day
    )

    changed = default_config()
    changed.minimum_weighted_minutes_per_day = 30
    server.authority_stub().SetExposureConfig(authority_pb2.SetExposureConfigRequest(config=changed), timeout=10)
    now_in_force = open_config(
        distribution.GetExposureConfig(d.GetExposureConfigRequest(), timeout=10), trusted(server)
    )
    assert now_in_force.version == 2 and now_in_force.minimum_weighted_minutes_per_day == 30


def test_concurrent_configuration_changes_each_get_their_own_version(server):
    # Every change is signed with the version it was given: two changes sharing one would let phones keep either.
    changes = 24
    stub = server.authority_stub()

    def change(minutes: int) -> int:
        config = default_config()
        config.minimum_weighted_minutes_per_day = minutes
        return stub.SetExposureConfig(authority_pb2.SetExposureConfigRequest(config=config), timeout=30).signed

    with ThreadPoolExecutor(changes) as pool:
        signed = list(pool.map(change, range(10, 10 + changes)))
    versions = sorted(open_config(s, trusted(server)).version for s in signed)
    assert versions == list(range(2, 2 + changes))
    latest = max(signed, key=lambda s: open_config(s, trusted(server)).version)
    in_force = server.distribution_stub().GetExposureConfig(distribution_pb2.GetExposureConfigRequest(), timeout=10)
    assert in_force == latest


def test_an_invalid_configuration_is_refused_naming_the_field_and_changes_nothing(server):
    broken = default_config()
    broken.attenuation_weights[:] = [1.0, 1.0]
    with pytest.raises(grpc.RpcError) as raised:
        server.authority_stub().SetExposureConfig(authority_pb2.SetExposureConfigRequest(config=broken), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "config.attenuation_weights" in [v.field for v in violations_of(raised.value)]
    from exposure.v1 import distribution_pb2 as d

    signed = server.distribution_stub().GetExposureConfig(d.GetExposureConfigRequest(), timeout=10)
    assert open_config(signed, trusted(server)).version == 1


# --- one-time codes -----------------------------------------------------------------------------------------------


def issue_code(server, **fields) -> authority_pb2.IssueCodeResponse:
    request = authority_pb2.IssueCodeRequest(**{"report_type": ReportType.CONFIRMED_TEST, **fields})
    return server.authority_stub().IssueCode(request, timeout=10)


def upload(server, code: str, *keys):
    return server.sharing_stub().SubmitWithCode(sharing_pb2.SubmitWithCodeRequest(code=code, keys=keys), timeout=10)


def test_a_patient_uploads_with_a_code_and_the_code_supplies_the_diagnosis(server):
    issued = issue_code(server, symptom_onset_date="2026-11-18", report_type=ReportType.CONFIRMED_CLINICAL_DIAGNOSIS)
    assert issued.expires_at == NOW + 3600
    response = upload(server, issued.code.lower(), diagnosis_key(1, report_type=0), diagnosis_key(2, day=2))
    assert response.accepted == 2
    [batch] = publish(server)
    header = open_header(
        server.distribution_stub().ListBatches(distribution_pb2.ListBatchesRequest(), timeout=10).batches[0],
        trusted(server),
    )
    assert [list(s.report_types) for s in header.sections] == [
        [ReportType.CONFIRMED_TEST, ReportType.CONFIRMED_CLINICAL_DIAGNOSIS]
    ]
    assert batch["keys_published"] == 2


def test_a_code_works_once(server):
    code = issue_code(server).code
    upload(server, code, diagnosis_key(1))
    assert code_of(lambda: upload(server, code, diagnosis_key(2))) == grpc.StatusCode.PERMISSION_DENIED


def test_phones_racing_with_one_code_get_one_success_and_permission_denied_for_the_rest(server):
    """Uploads with other keys that all read the code as unused before any of them used it: the losers are told
    the code is used (PERMISSION_DENIED), never that a submission id clashed."""

    def status_of(n: int) -> grpc.StatusCode:
        try:
            upload(server, code, diagnosis_key(n))
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    for _ in range(5):
        code = issue_code(server).code
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(status_of, range(8)))
        assert answers.count(grpc.StatusCode.OK) == 1, answers
        assert set(answers) == {grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED}, answers


def test_a_phone_retrying_an_upload_after_a_lost_answer_gets_the_first_answer_again(server):
    code = issue_code(server).code
    first = upload(server, code, diagnosis_key(1), diagnosis_key(2, day=2))
    again = upload(server, code, diagnosis_key(1), diagnosis_key(2, day=2))
    assert again == first and first.accepted == 2
    [batch] = publish(server)
    assert batch["keys"] == 2


def test_an_upload_with_no_valid_key_leaves_the_code_usable(server):
    code = issue_code(server).code
    assert code_of(lambda: upload(server, code, diagnosis_key(1, key_data=b"x"))) == grpc.StatusCode.INVALID_ARGUMENT
    assert upload(server, code, diagnosis_key(1)).accepted == 1


def test_a_malformed_code_is_invalid_argument_and_an_unknown_one_permission_denied(server):
    assert code_of(lambda: upload(server, "short", diagnosis_key(1))) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: upload(server, "2345-6789-ABCD", diagnosis_key(1))) == grpc.StatusCode.PERMISSION_DENIED


def test_a_code_is_stored_under_the_servers_secret_so_a_copy_of_the_database_cannot_search_for_it(pki, tmp_path):
    from tests.integration.harness import start_server

    database = tmp_path / "service.db"
    server = start_server(pki, f"sqlite:{database}", "--now", str(NOW), log=tmp_path / "serve.log")
    try:
        code = codes.normalise(issue_code(server).code)
    finally:
        server.stop()
    [stored] = [row[0] for row in sqlite3.connect(database).execute("SELECT code_hash FROM codes")]
    unkeyed = hashlib.sha256(b"exposure.v1.code\x00" + code.encode()).digest()  # what anyone could compute
    assert stored != unkeyed
    assert stored == codes.code_hash(code, codes.load_secret(pki / "server" / codes.SECRET_FILE))


def test_an_expired_code_is_refused(pki, store_url, tmp_path):
    from tests.integration.harness import start_server

    first = start_server(pki, store_url, "--now", str(NOW), log=tmp_path / "a.log")
    try:
        code = issue_code(first, ttl_seconds=600).code
    finally:
        first.stop()
    later = start_server(pki, store_url, "--now", str(NOW + 601), log=tmp_path / "b.log")
    try:
        assert code_of(lambda: upload(later, code, diagnosis_key(1))) == grpc.StatusCode.PERMISSION_DENIED
    finally:
        later.stop()


# --- health, reflection, metrics ------------------------------------------------------------------------------------


def test_health_checking_reports_serving_for_the_server_and_each_service(server):
    stub = health_pb2_grpc.HealthStub(server.public_channel())
    for service in ("", "exposure.v1.Distribution", "exposure.v1.Authority", "exposure.v1.Sharing"):
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service


def test_reflection_lists_the_services(server):
    stub = reflection_pb2_grpc.ServerReflectionStub(server.public_channel())
    [answer] = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    names = {s.name for s in answer.list_services_response.service}
    assert {
        "exposure.v1.Authority",
        "exposure.v1.Sharing",
        "exposure.v1.Distribution",
        "grpc.health.v1.Health",
    } <= names


def test_metrics_count_calls_and_keys_without_any_key_material(server):
    submit(server.authority_stub(), diagnosis_key(1), diagnosis_key(2, key_data=b"x"))
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics}/metrics", timeout=10).read().decode()
    assert "matcher_keys_accepted_total 1" in text and "matcher_keys_rejected_total 1" in text
    assert 'matcher_rpc_total{code="OK",method="SubmitKeys"} 1' in text
    assert tek(1).hex() not in text and tek(1).hex() not in server.log_text()


# --- batch files ------------------------------------------------------------------------------------------------------


def test_published_batch_files_inspect_as_valid_and_a_flipped_bit_is_refused(server, tmp_path):
    submit(server.authority_stub(), diagnosis_key(1), diagnosis_key(2, tx_power_dbm=-12))
    store = server.store
    matcher(
        "publish",
        "--store",
        store,
        "--tls-dir",
        str(server.tls_dir),
        "--now",
        str(LATER),
        "--out",
        str(tmp_path / "out"),
        *PUBLISH_EVERY_CASE,
    )
    batch_file = tmp_path / "out" / "batch-1.bin"
    inspected = matcher("inspect", str(batch_file), "--tls-dir", str(server.tls_dir), "--json")
    report = json.loads(inspected.stdout)
    assert report["ok"] and report["header"]["sequence"] == 1 and report["header"]["format_version"] == 2
    [section] = report["header"]["sections"]
    assert section["count"] == 288 and section["infectiousness"] == ["STANDARD", "HIGH"]
    text = matcher("inspect", str(batch_file), "--tls-dir", str(server.tls_dir)).stdout
    assert "verdict: valid" in text and "288 elements" in text

    data = bytearray(batch_file.read_bytes())
    data[-5] ^= 0x10  # a bit in the last section's remainders
    batch_file.write_bytes(bytes(data))
    refused = matcher("inspect", str(batch_file), "--tls-dir", str(server.tls_dir), check=False)
    assert refused.returncode == 1 and "REFUSED" in refused.stdout and "SHA-256 of the body differs" in refused.stdout


def test_a_second_server_on_a_port_in_use_stops_with_one_line_saying_so(server, pki, tmp_path):
    second = matcher(
        "serve",
        "--store",
        f"sqlite:{tmp_path / 'other.db'}",
        "--tls-dir",
        str(pki / "server"),
        "--listen",
        server.public,
        "--authority-listen",
        "127.0.0.1:0",
        check=False,
        timeout=30,
    )
    assert second.returncode == 1
    ours = [line for line in second.stderr.splitlines() if line.startswith("matcher:")]
    assert ours == [
        f"matcher: error: cannot listen on {server.public}: the port is in use or the address is not this machine's"
    ]
    assert "Traceback" not in second.stderr
