"""push_keys over real mutual TLS against a stand-in for the authority listener (tests/ha/authority_peer.py)."""

from __future__ import annotations

import pytest

from clients.ha.channel import authority_channel
from clients.ha.push import PushError, push_keys
from clients.ha.retry import RetryPolicy
from clients.ha.submissions import plan_submissions
from exposure.v1 import keys_pb2
from matcher.certs import write_dev_pki
from matcher.errors import ResourceExhausted, Unavailable, to_status
from tests.ha.conftest import authority_dir

NOW = 2650300 * 600
POLICY = RetryPolicy(max_attempts=3, call_timeout=10)


def keys(count: int, start: int = 2650000, report_type: int = 1) -> list[keys_pb2.DiagnosisKey]:
    return [
        keys_pb2.DiagnosisKey(key_data=(i + 1).to_bytes(16, "big"), rolling_start_interval_number=start,
                              report_type=report_type)
        for i in range(count)
    ]  # fmt: skip


def push(peer_address, tls_dir, sent, *, authority="vn-moh", **options):
    waits: list[float] = []
    with authority_channel(peer_address, authority_dir(tls_dir, authority), authority) as channel:
        summary = push_keys(channel, sent, authority=authority, policy=POLICY, sleep=waits.append, **options)
    return summary, waits


def test_an_import_goes_in_submissions_of_30_with_their_planned_ids(peer, peer_address, tls_dir):
    sent = keys(70)
    done = []
    summary, waits = push(peer_address, tls_dir, sent, region="VN", progress=lambda n, total: done.append((n, total)))
    assert (summary.submissions, summary.accepted, summary.rejected, summary.replayed) == (3, 70, (), 0)
    assert [len(call.keys) for call in peer.calls] == [30, 30, 10]
    planned = plan_submissions(sent, authority="vn-moh", region="VN")
    assert [call.submission_id for call in peer.calls] == [p.submission_id for p in planned]
    assert done == [(1, 3), (2, 3), (3, 3)]
    assert len(peer.stored) == 70 and waits == []


def test_running_the_same_import_again_stores_nothing_new(peer, peer_address, tls_dir):
    push(peer_address, tls_dir, keys(45))
    again, _ = push(peer_address, tls_dir, keys(45))
    assert (again.accepted, again.replayed) == (45, 2)
    assert len(peer.stored) == 45


def test_keys_still_in_use_are_reported_as_embargoed(peer, peer_address, tls_dir):
    summary, _ = push(peer_address, tls_dir, keys(3, start=NOW // 600 - 10))
    assert (summary.accepted, summary.embargoed) == (3, 3)


def test_rejections_come_back_as_indexes_into_the_whole_import(peer, peer_address, tls_dir):
    sent = keys(35)
    sent[31].rolling_period = 145
    sent[2].report_type = 5
    summary, _ = push(peer_address, tls_dir, sent)
    assert summary.accepted == 33
    assert summary.rejected == (
        (2, "report_type: REVOKED is not supported: a published batch cannot withdraw a key"),
        (31, "rolling_period: must be 1..144 ten-minute intervals, got 145"),
    )


def test_a_submission_without_one_valid_key_is_a_rejection_of_its_keys_not_the_end_of_the_import(
    peer, peer_address, tls_dir
):
    sent = keys(31)
    for key in sent[30:]:
        key.rolling_start_interval_number = NOW // 600 + 5  # in the future by the server's clock
    summary, _ = push(peer_address, tls_dir, sent)
    assert (summary.submissions, summary.accepted) == (2, 30)
    assert [index for index, _ in summary.rejected] == [30]
    assert summary.rejected[0][1].startswith("rolling_start_interval_number: starts in the future")


def test_transient_failures_are_retried_honouring_the_servers_delay(peer, peer_address, tls_dir):
    peer.failures = [
        to_status(Unavailable("storage is down")),
        to_status(ResourceExhausted("slow down", retry_after=1.5)),
    ]
    summary, waits = push(peer_address, tls_dir, keys(5))
    assert summary.accepted == 5
    assert len(peer.calls) == 3
    assert POLICY.initial_backoff / 2 <= waits[0] < POLICY.initial_backoff and waits[1] == 1.5


def test_a_failure_that_outlasts_the_attempts_stops_the_import_and_a_rerun_completes_it(peer, peer_address, tls_dir):
    sent = keys(40)

    def server_goes_down(done: int, total: int) -> None:
        peer.failures = [to_status(Unavailable("storage is down"))] * POLICY.max_attempts

    with pytest.raises(PushError) as stopped:
        push(peer_address, tls_dir, sent, progress=server_goes_down)
    assert len(peer.calls) == 1 + POLICY.max_attempts
    assert (stopped.value.done.submissions, stopped.value.done.accepted) == (1, 30)
    message = str(stopped.value)
    assert message.startswith("submission 2 of 2 (import-")
    assert "UNAVAILABLE: storage is down; 30 keys were accepted before it" in message
    assert "\n" not in message

    rerun, _ = push(peer_address, tls_dir, sent)
    assert (rerun.submissions, rerun.accepted, rerun.replayed) == (2, 40, 1)
    assert len(peer.stored) == 40


def test_a_permanent_failure_stops_at_once_with_its_field_violations(peer, peer_address, tls_dir):
    with pytest.raises(PushError) as stopped:
        push(peer_address, tls_dir, keys(3), region="XX1")
    assert "INVALID_ARGUMENT: the submission is malformed (region: 'XX1' is not an ISO 3166-1 alpha-2" in str(
        stopped.value
    )
    assert len(peer.calls) == 1 and peer.stored == {}


def test_an_authority_the_server_does_not_allow_is_refused_without_retries(peer, peer_address, tls_dir):
    with pytest.raises(PushError, match="PERMISSION_DENIED: this certificate's authority may not submit keys"):
        push(peer_address, tls_dir, keys(3), authority="stranger")
    assert len(peer.calls) == 1 and peer.stored == {}


def test_a_certificate_from_another_ca_does_not_get_through(peer, peer_address, tls_dir, tmp_path):
    other = tmp_path / "other"
    write_dev_pki(other, ["vn-moh"])
    ours, theirs = authority_dir(tls_dir, "vn-moh"), authority_dir(other, "vn-moh")
    (theirs / "ca.pem").write_bytes((ours / "ca.pem").read_bytes())  # trusts the server, but its own cert is foreign
    with pytest.raises(PushError, match="UNAVAILABLE"):
        push(peer_address, other, keys(1))
    assert peer.calls == []


def test_a_tls_folder_without_the_authoritys_files_is_a_one_line_error(tls_dir):
    with pytest.raises(
        FileNotFoundError, match=r"no nobody.key or nobody.pem \(the folder DIR/authority-nobody that `matcher certs"
    ):
        authority_channel("127.0.0.1:1", authority_dir(tls_dir, "vn-moh"), "nobody")
