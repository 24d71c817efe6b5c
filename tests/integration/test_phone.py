"""Phones against the real service: a phone meets a case, the case shares its keys with a code, a batch is cut,
the phones sync, verify and match on the device. Stories in the DP-3T style, on real TLS and real storage."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.phone.keys import broadcast_at, key_for_day
from clients.phone.matching import header_of, match_new
from clients.phone.scoring import score
from clients.phone.share import NotAContact, exposure_day, share, share_request
from clients.phone.store import PhoneStore
from clients.phone.sync import SyncReport, sync
from exposure.v1 import authority_pb2, batch_pb2, config_pb2, distribution_pb2, distribution_pb2_grpc
from matcher.batches import build_batch, sign_header
from matcher.exposure_config import config_in_force, default_config
from matcher.fprate import error_rate_for
from matcher.intervals import day_of, interval_number
from matcher.model import DiagnosisKey, ReportType
from matcher.signing import (
    DOMAIN_BATCH_HEADER,
    SigningKey,
    TrustedKeys,
    VerifyingKey,
    generate_signing_key,
    load_signing_key,
    load_verifying_key,
)
from tests.integration.harness import NOW, TODAY, start_server
from tests.integration.test_service import diagnosis_key, download, publish

MEETING = (TODAY - 144) * 600 + 9 * 3600  # yesterday 09:00 UTC
SCAN_SECONDS = 300  # the phones' scanner runs every 5 minutes
CLOSE_RANGE_RSSI = -60  # attenuation 52 dB with the case's -8 dBm: the "immediate" bucket


def phone(tmp_path: Path, name: str) -> PhoneStore:
    return PhoneStore(tmp_path / f"{name}.db")


def meet(
    case: PhoneStore,
    contact: PhoneStore,
    start: int,
    minutes: int,
    rssi: int = CLOSE_RANGE_RSSI,
    shift_intervals: int = 0,
) -> None:
    """The contact's scanner hears the case every 5 minutes for ``minutes`` minutes. With ``shift_intervals``,
    the contact records what it heard that many intervals later: an identifier replayed by an attacker."""
    rows = []
    for t in range(start, start + minutes * 60, SCAN_SECONDS):
        heard = broadcast_at(case, t)
        when = t + shift_intervals * 600
        rows.append((heard.rpi, interval_number(when), when, rssi, heard.aem))
    contact.add_sightings(rows)


def trusted(tls_dir: Path) -> TrustedKeys:
    return TrustedKeys([load_verifying_key(tls_dir / "signing.pub.pem")])


def public_channel(server) -> grpc.Channel:
    return server.public_channel()


@pytest.fixture
def sqlite_server(pki, tmp_path) -> Iterator:
    # The day after the meeting, when yesterday's keys have expired and can be shared.
    running = start_server(pki, f"sqlite:{tmp_path / 'service.db'}", "--now", str(NOW), log=tmp_path / "serve.log")
    yield running
    running.stop()


def diagnose_and_share(server, case: PhoneStore) -> None:
    issued = server.authority_stub().IssueCode(
        authority_pb2.IssueCodeRequest(report_type=ReportType.CONFIRMED_TEST, symptom_onset_date="2026-11-19"),
        timeout=10,
    )
    response = share(public_channel(server), case, issued.code, NOW)
    assert response.accepted >= 1 and not response.rejected
    [batch] = publish(server, now=NOW + 86400)
    assert batch["keys_published"] >= 1


def check(contact: PhoneStore) -> list:
    config = config_in_force(contact.get("config"))
    match_new(contact, config)
    return score(contact, config)


def test_a_phone_near_a_case_for_20_minutes_alerts_and_5_minutes_or_nothing_does_not(sqlite_server, tmp_path):
    case = phone(tmp_path, "case")
    key_for_day(case, interval_number(MEETING))
    near, brief, stranger = phone(tmp_path, "near"), phone(tmp_path, "brief"), phone(tmp_path, "stranger")
    meet(case, near, MEETING, 20)
    meet(case, brief, MEETING + 3600, 5)
    diagnose_and_share(sqlite_server, case)

    for contact in (near, brief, stranger):
        report = sync(public_channel(sqlite_server), contact, trusted(sqlite_server.tls_dir))
        assert report.new_batches == [1] and not report.refused

    [near_day] = check(near)
    assert near_day.alert and near_day.minutes >= 15 and near_day.day == "2026-11-19"
    [brief_day] = check(brief)
    assert not brief_day.alert and brief_day.matched_intervals == 1
    assert check(stranger) == []


def test_a_single_matched_interval_never_alerts_however_many_sightings_it_has(sqlite_server, tmp_path):
    case, contact = phone(tmp_path, "case"), phone(tmp_path, "contact")
    key_for_day(case, interval_number(MEETING))
    heard = broadcast_at(case, MEETING)
    contact.add_sightings(
        [(heard.rpi, interval_number(MEETING), MEETING + s, -50, heard.aem) for s in range(0, 600, 30)]
    )
    diagnose_and_share(sqlite_server, case)
    sync(public_channel(sqlite_server), contact, trusted(sqlite_server.tls_dir))
    [day] = check(contact)
    assert day.matched_intervals == 1 and day.counted_intervals == 0 and day.minutes == 0 and not day.alert


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_an_identifier_replayed_at_another_interval_does_not_match(sqlite_server, tmp_path, shift):
    # Heard 4 and 9 minutes into each interval, replayed ``shift`` intervals later: every replay lies more than the
    # clock skew (2 minutes) past the end of the identifier's interval, so that none may match.
    case, victim = phone(tmp_path, "case"), phone(tmp_path, "victim")
    key_for_day(case, interval_number(MEETING))
    meet(case, victim, MEETING + 240, 30, shift_intervals=shift)
    diagnose_and_share(sqlite_server, case)
    sync(public_channel(sqlite_server), victim, trusted(sqlite_server.tls_dir))
    assert match_new(victim, config_in_force(victim.get("config"))) == 0
    assert victim.matches() == [] and check(victim) == []


def test_an_identifier_heard_within_the_clock_skew_before_its_interval_matches(sqlite_server, tmp_path):
    # The contact's clock is a minute behind: it records the identifier of the first interval of the case's key
    # (the first interval of the batch) in the interval before. The skew allowed between phones is 2 minutes.
    case, contact = phone(tmp_path, "case"), phone(tmp_path, "contact")
    start, _ = key_for_day(case, interval_number(MEETING))
    heard = broadcast_at(case, start * 600)
    early = start * 600 - 60
    contact.add_sightings([(heard.rpi, interval_number(early), early, CLOSE_RANGE_RSSI, heard.aem)])
    diagnose_and_share(sqlite_server, case)
    sync(public_channel(sqlite_server), contact, trusted(sqlite_server.tls_dir))
    [kept] = contact.batches()
    assert header_of(kept.signed_header).first_interval == start
    assert match_new(contact, config_in_force(contact.get("config"))) == 1


# --- what the phone sends -------------------------------------------------------------------------------------------


class Recorder(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Records every request message a channel sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    def intercept_unary_unary(self, continuation, details, request):
        self.sent.append((details.method, request))
        return continuation(details, request)

    def intercept_unary_stream(self, continuation, details, request):
        self.sent.append((details.method, request))
        return continuation(details, request)


def test_a_sync_sends_nothing_but_cursors_and_offsets(sqlite_server, tmp_path):
    case, contact = phone(tmp_path, "case"), phone(tmp_path, "contact")
    key_for_day(case, interval_number(MEETING))
    meet(case, contact, MEETING, 20)
    diagnose_and_share(sqlite_server, case)
    recorder = Recorder()
    sync(grpc.intercept_channel(public_channel(sqlite_server), recorder), contact, trusted(sqlite_server.tls_dir))

    allowed = {
        "/exposure.v1.Distribution/GetExposureConfig": set(),
        "/exposure.v1.Distribution/ListBatches": {"after_sequence", "page_size"},
        "/exposure.v1.Distribution/DownloadBatch": {"sequence", "offset", "chunk_size"},
    }
    assert {method for method, _ in recorder.sent} == set(allowed)
    heard = {row.tobytes() for row in contact.sightings().rpis}
    for method, request in recorder.sent:
        assert {f.name for f, _ in request.ListFields()} <= allowed[method]
        wire = request.SerializeToString()
        assert not any(rpi in wire for rpi in heard)


def test_a_share_sends_the_code_and_own_keys_only(tmp_path):
    case = phone(tmp_path, "case")
    for day in range(1, 4):
        key_for_day(case, interval_number(NOW) - 144 * day)
    key_for_day(case, interval_number(NOW))  # today's key: still in use, not shared
    contact = phone(tmp_path, "contact")
    meet(case, contact, MEETING, 20)
    request = share_request(case, "ABCD-EFGH-JKMN", NOW)
    assert [f.name for f, _ in request.ListFields()] == ["code", "keys", "padding"]
    assert set(request.padding) == {0}  # zero bytes to the one size of every share (matcher/padding.py)
    own = {tek for _, tek, _ in case.own_keys()}
    assert len(request.keys) == 3 and {k.key_data for k in request.keys} <= own
    for key in request.keys:
        assert {f.name for f, _ in key.ListFields()} <= {"key_data", "rolling_start_interval_number", "rolling_period"}


def test_a_share_states_contact_intervals_only_when_asked_and_only_within_each_keys_validity(tmp_path):
    case = phone(tmp_path, "case")
    key_for_day(case, interval_number(MEETING))
    contact = phone(tmp_path, "contact")
    meet(contact, case, MEETING, 20)  # the case's phone hears the contact for 20 minutes
    assert not any(k.contact_intervals for k in share_request(case, "ABCD-EFGH-JKMN", NOW).keys)
    [key] = share_request(case, "ABCD-EFGH-JKMN", NOW, contact_intervals=True).keys
    heard = {interval_number(MEETING + minute * 60) - key.rolling_start_interval_number for minute in range(0, 20, 5)}
    marked = {j for j in range(144) if int.from_bytes(key.contact_intervals, "little") >> j & 1}
    assert len(key.contact_intervals) == 18
    assert marked == {j + d for j in heard for d in (-1, 0, 1)}  # each heard interval and its neighbours


# --- refusing bad batches -------------------------------------------------------------------------------------------


class Tamper:
    """What a man in the middle changes between phones and the service (a compromised mirror or CDN); this one
    changes nothing. ``body`` gets a batch's whole body and returns what is served instead: a shorter one is a
    truncated download, ending cleanly."""

    def listing(self, request: distribution_pb2.ListBatchesRequest, listing):
        return listing

    def body(self, sequence: int, body: bytes) -> bytes:
        return body

    def config(self, signed: config_pb2.SignedExposureConfig) -> config_pb2.SignedExposureConfig:
        return signed


def flipped(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << bit % 8
    return bytes(changed)


@dataclass
class FlipBit(Tamper):
    """One bit of batch 1 flipped: in its signed header bytes, its signature, or its body."""

    part: str
    bit: int

    def listing(self, request, listing):
        for signed in listing.batches:
            if self.part != "body" and batch_pb2.BatchHeader.FromString(signed.header).sequence == 1:
                setattr(signed, self.part, flipped(getattr(signed, self.part), self.bit))
        return listing

    def body(self, sequence, body):
        return flipped(body, self.bit) if self.part == "body" and sequence == 1 else body


@dataclass
class Truncate(Tamper):
    """Batch 1's download ends cleanly after ``keep`` bytes."""

    keep: int

    def body(self, sequence, body):
        return body[: self.keep] if sequence == 1 else body


@dataclass
class Resign(Tamper):
    """Batch 1's header re-signed: by ``signer``, naming ``header_key_id`` inside the header and ``envelope_key_id``
    outside (each defaulting to the signer's own id)."""

    signer: SigningKey
    header_key_id: str | None = None
    envelope_key_id: str | None = None

    def listing(self, request, listing):
        for signed in listing.batches:
            header = batch_pb2.BatchHeader.FromString(signed.header)
            if header.sequence == 1:
                header.signing_key_id = self.header_key_id or self.signer.key_id
                payload = header.SerializeToString(deterministic=True)
                signed.header, signed.signature = payload, self.signer.sign(DOMAIN_BATCH_HEADER, payload)
                signed.key_id = self.envelope_key_id or self.signer.key_id
        return listing


@dataclass
class Withhold(Tamper):
    """Lists nothing after ``last``, as if no newer batch existed yet."""

    last: int

    def listing(self, request, listing):
        kept = [s for s in listing.batches if batch_pb2.BatchHeader.FromString(s.header).sequence <= self.last]
        del listing.batches[:]
        listing.batches.extend(kept)
        listing.more = False
        return listing


@dataclass
class Replay(Tamper):
    """Where newer batches should be listed, an older batch's signed header again."""

    older: batch_pb2.SignedBatchHeader

    def listing(self, request, listing):
        if listing.batches:
            del listing.batches[:]
            listing.batches.append(self.older)
        return listing


@dataclass
class EndlessPages(Tamper):
    """The first page again, saying more follow, to every listing whatever the phone asks after (stops lying after
    ``limit`` calls, so that a phone without the guard fails this test instead of hanging it)."""

    limit: int = 500
    calls: int = 0
    first: list = field(default_factory=list)

    def listing(self, request, listing):
        self.calls += 1
        self.first = self.first or list(listing.batches)
        del listing.batches[:]
        listing.batches.extend(self.first)
        listing.more = self.calls < self.limit
        return listing


@dataclass
class OlderBody(Tamper):
    """An older batch's body served for batch 2."""

    older: bytes

    def body(self, sequence, body):
        return self.older if sequence == 2 else body


@dataclass
class ChangedConfig(Tamper):
    """The exposure configuration with its alert threshold lowered to 1 weighted minute, its signature kept."""

    def config(self, signed):
        config = config_pb2.ExposureConfig.FromString(signed.config)
        config.minimum_weighted_minutes_per_day = 1
        signed.config = config.SerializeToString(deterministic=True)
        return signed


@dataclass
class ReplayedConfig(Tamper):
    """An older signed exposure configuration served instead of the one in force."""

    older: config_pb2.SignedExposureConfig

    def config(self, signed):
        return self.older


class TamperingDistribution(distribution_pb2_grpc.DistributionServicer):
    """Serves what the service serves, through ``tamper``: a man in the middle."""

    def __init__(self, upstream: distribution_pb2_grpc.DistributionStub, tamper: Tamper | None = None) -> None:
        self.upstream, self.tamper = upstream, tamper or Tamper()

    def GetExposureConfig(self, request, context):
        return self.tamper.config(self.upstream.GetExposureConfig(request, timeout=10))

    def ListBatches(self, request, context):
        return self.tamper.listing(request, self.upstream.ListBatches(request, timeout=10))

    def DownloadBatch(self, request, context):
        whole = distribution_pb2.DownloadBatchRequest(sequence=request.sequence)
        body = self.tamper.body(
            request.sequence, b"".join(c.data for c in self.upstream.DownloadBatch(whole, timeout=10))
        )
        step = request.chunk_size or 1 << 20
        for offset in range(request.offset, len(body), step):
            yield distribution_pb2.BatchChunk(offset=offset, data=body[offset : offset + step], body_size=len(body))


@contextmanager
def man_in_the_middle(server, tamper: Tamper | None = None) -> Iterator[tuple[grpc.Channel, TamperingDistribution]]:
    """A plain-text channel to a proxy in front of ``server``'s Distribution service."""
    proxy = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    upstream = distribution_pb2_grpc.DistributionStub(public_channel(server))
    servicer = TamperingDistribution(upstream, tamper)
    distribution_pb2_grpc.add_DistributionServicer_to_server(servicer, proxy)
    port = proxy.add_insecure_port("127.0.0.1:0")
    proxy.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, servicer
    finally:
        proxy.stop(0)


@pytest.mark.parametrize(
    "tamper, reason",
    [(FlipBit("body", 8 * 100 + 7), "SHA-256"), (FlipBit("header", 8 * 20), "signature"), (Truncate(100), "truncated")],
    ids=["a bit of the body", "a bit of the header", "a truncated download"],
)
def test_a_tampered_batch_is_refused_with_a_reason_and_never_used(sqlite_server, tmp_path, tamper, reason):
    case, contact = phone(tmp_path, "case"), phone(tmp_path, "contact")
    key_for_day(case, interval_number(MEETING))
    meet(case, contact, MEETING, 20)
    diagnose_and_share(sqlite_server, case)
    with man_in_the_middle(sqlite_server, tamper) as (channel, _):
        report = sync(channel, contact, trusted(sqlite_server.tls_dir))
    assert report.new_batches == [] and len(report.refused) == 1
    assert reason.lower() in report.refused[0][1].lower()
    assert contact.batches() == [] and check(contact) == []


def change_config(server, minutes: int) -> config_pb2.SignedExposureConfig:
    """The authority sets the alert threshold to ``minutes`` weighted minutes: a new version, signed."""
    changed = default_config()
    changed.minimum_weighted_minutes_per_day = minutes
    request = authority_pb2.SetExposureConfigRequest(config=changed)
    return server.authority_stub().SetExposureConfig(request, timeout=10).signed


def config_held(contact: PhoneStore) -> config_pb2.ExposureConfig:
    return config_in_force(contact.get("config"))


def test_an_exposure_configuration_changed_in_transit_is_refused_and_the_signed_one_kept(sqlite_server, tmp_path):
    contact = phone(tmp_path, "contact")
    signed = change_config(sqlite_server, 30)
    sync(public_channel(sqlite_server), contact, trusted(sqlite_server.tls_dir))
    assert contact.get("config") == signed.SerializeToString()

    with man_in_the_middle(sqlite_server, ChangedConfig()) as (channel, _):
        report = sync(channel, contact, trusted(sqlite_server.tls_dir))
    [(_, reason)] = report.refused
    assert reason.startswith("exposure configuration refused: ") and "signature does not verify" in reason
    assert contact.get("config") == signed.SerializeToString()
    assert config_held(contact).minimum_weighted_minutes_per_day == 30


def test_an_older_exposure_configuration_replayed_is_not_kept_over_the_newer_one(sqlite_server, tmp_path):
    contact = phone(tmp_path, "contact")
    older = change_config(sqlite_server, 30)
    newer = change_config(sqlite_server, 10)
    sync(public_channel(sqlite_server), contact, trusted(sqlite_server.tls_dir))
    assert config_held(contact).version == 3 and contact.get("config") == newer.SerializeToString()

    with man_in_the_middle(sqlite_server, ReplayedConfig(older)) as (channel, _):
        report = sync(channel, contact, trusted(sqlite_server.tls_dir))
    assert report.config_version == 2  # what it was served verifies: it is older, so it is not kept
    assert config_held(contact).version == 3 and contact.get("config") == newer.SerializeToString()
    assert config_held(contact).minimum_weighted_minutes_per_day == 10


@dataclass
class Published:
    """A service with two published batches, and batch 1 as phones get it."""

    server: object
    first: batch_pb2.SignedBatchHeader
    first_body: bytes

    def size(self, part: str) -> int:
        return len(self.first_body) if part == "body" else len(getattr(self.first, part))


@pytest.fixture(scope="module")
def two_batches(pki, tmp_path_factory) -> Iterator[Published]:
    folder = tmp_path_factory.mktemp("two-batches")
    server = start_server(pki, f"sqlite:{folder / 'service.db'}", "--now", str(NOW), log=folder / "serve.log")
    try:
        for n in (1, 2):
            server.authority_stub().SubmitKeys(
                authority_pb2.SubmitKeysRequest(submission_id=f"batch-{n}", keys=[diagnosis_key(n)]), timeout=10
            )
            publish(server, now=NOW + 86400 + n)
        stub = distribution_pb2_grpc.DistributionStub(public_channel(server))
        [first, _] = stub.ListBatches(distribution_pb2.ListBatchesRequest(), timeout=10).batches
        yield Published(server, first, download(stub, 1))
    finally:
        server.stop()


def sync_through(
    published: Published, tamper: Tamper, contact: PhoneStore | None = None, pinned: list[VerifyingKey] = ()
) -> tuple[SyncReport, list[int]]:
    """A fresh phone (or ``contact``) syncing through a man in the middle: its report and the batches it keeps."""
    with tempfile.TemporaryDirectory() as folder, man_in_the_middle(published.server, tamper) as (channel, _):
        store = contact or PhoneStore(Path(folder) / "phone.db")
        keys = [load_verifying_key(published.server.tls_dir / "signing.pub.pem"), *pinned]
        report = sync(channel, store, TrustedKeys(keys))
        return report, [kept.sequence for kept in store.batches()]


REASONS = {"header": "signature does not verify", "signature": "signature does not verify", "body": "SHA-256"}


@settings(max_examples=150, deadline=None)
@given(part=st.sampled_from(sorted(REASONS)), data=st.data())
def test_any_bit_flipped_in_a_batch_header_its_signature_or_its_body_gets_the_batch_refused_saying_why(
    two_batches, part, data
):
    bit = data.draw(st.integers(0, 8 * two_batches.size(part) - 1), label="bit")
    report, kept = sync_through(two_batches, FlipBit(part, bit))
    [(_, message)] = report.refused
    assert REASONS[part] in message, message
    assert kept == [2] and report.new_batches == [2]  # the untouched batch is still used


@settings(max_examples=10, deadline=None)
@given(keep=st.integers(0, 10**6))
def test_a_truncated_download_is_refused_saying_how_much_arrived(two_batches, keep):
    keep %= two_batches.size("body")
    report, kept = sync_through(two_batches, Truncate(keep))
    assert report.refused == [
        (1, f"batch 1 refused: the download is truncated: {keep} of {two_batches.size('body')} bytes")
    ]
    assert kept == [2]


ROGUE, ROTATION = generate_signing_key(), generate_signing_key()


@pytest.mark.parametrize(
    "tamper, pinned, reason",
    [
        (lambda service: Resign(ROGUE), [], "which is not one of the pinned keys"),
        (
            lambda service: Resign(service, envelope_key_id=ROTATION.key_id),
            [ROTATION.verifying_key()],
            f"the signature does not verify with key {ROTATION.key_id}",
        ),
        (
            lambda service: Resign(service, header_key_id=ROTATION.key_id),
            [],
            f"signed as key {ROTATION.key_id}/v1 but presented as",
        ),
    ],
    ids=["signed by a key that is not pinned", "named as another pinned key", "its header naming another key"],
)
def test_a_batch_under_a_wrong_key_id_is_refused_saying_which_key(two_batches, tamper, pinned, reason):
    # The last two need the service's own key: a server-side mix-up of keys, or a stolen key used carelessly.
    service = load_signing_key(two_batches.server.tls_dir / "signing.key")
    report, kept = sync_through(two_batches, tamper(service), pinned=pinned)
    [(_, message)] = report.refused
    assert reason in message, message
    assert kept == [2]


def test_an_older_batch_replayed_where_a_newer_one_should_be_is_refused_and_the_newer_one_is_fetched_later(
    two_batches, tmp_path
):
    contact = PhoneStore(tmp_path / "contact.db")
    assert sync_through(two_batches, Withhold(last=1), contact)[1] == [1]
    replayed, kept = sync_through(two_batches, Replay(two_batches.first), contact)
    assert replayed.refused == [(1, "batch 1 refused: not newer than batch 1 already held (a replay)")]
    assert kept == [1] and contact.cursor() == 1
    honest, kept = sync_through(two_batches, Tamper(), contact)
    assert honest.new_batches == [2] and kept == [1, 2]


def test_a_server_that_always_says_more_cannot_keep_a_phone_syncing(two_batches, tmp_path):
    contact = PhoneStore(tmp_path / "contact.db")
    endless = EndlessPages()
    report, kept = sync_through(two_batches, endless, contact)
    assert kept == [1, 2] and endless.calls == 2  # the second page listed nothing newer: the phone stopped
    assert report.interrupted == "the server says more batches follow batch 2 but listed none newer: stopped"


def test_an_older_batch_body_served_for_a_newer_batch_is_refused(two_batches):
    report, kept = sync_through(two_batches, OlderBody(two_batches.first_body))
    [(sequence, message)] = report.refused
    assert sequence == 2 and message.startswith("batch 2 refused: ") and kept == [1]


# --- the command line -------------------------------------------------------------------------------------------------


def phone_cli(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clients.phone.cli", "--db", str(db), "--now", str(NOW), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_phone_command_line_observes_syncs_and_checks(sqlite_server, tmp_path):
    case = phone(tmp_path, "case")
    key_for_day(case, interval_number(MEETING))
    lines = []
    for t in range(MEETING, MEETING + 25 * 60, SCAN_SECONDS):
        heard = broadcast_at(case, t)
        lines.append(json.dumps({"rpi": heard.rpi.hex(), "aem": heard.aem.hex(), "rssi": -58, "time": t}))
    (tmp_path / "heard.jsonl").write_text("\n".join(lines) + "\n")
    diagnose_and_share(sqlite_server, case)

    db = tmp_path / "cli-phone.db"
    assert phone_cli(db, "init").returncode == 0
    observed = phone_cli(db, "observe", str(tmp_path / "heard.jsonl"), "--json")
    assert json.loads(observed.stdout) == {"recorded": 5}, observed.stderr
    synced = phone_cli(
        db, "sync", "--server", sqlite_server.public, "--tls-dir", str(sqlite_server.phone_dir), "--json"
    )
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["new_batches"] == [1]
    checked = phone_cli(db, "check", "--json")
    [day] = json.loads(checked.stdout)
    assert set(day) == {"kind", "day", "level", "matched_intervals", "counted_intervals", "minutes", "score", "alert"}
    assert day["alert"] is True and day["day"] == "2026-11-19" and (day["level"], day["kind"]) == ("F1", "proximity")


def test_a_malformed_sighting_line_is_refused_in_one_line_and_nothing_is_recorded(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"rpi": "00", "aem": "00000000", "rssi": -50, "time": 1}\n')
    result = phone_cli(tmp_path / "p.db", "observe", str(tmp_path / "bad.jsonl"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "line 1" in result.stderr
    assert len(PhoneStore(tmp_path / "p.db").sightings()) == 0


# --- warnings for contacts of cases (F1 -> F2) ---------------------------------------------------------------------


def test_a_cases_contact_shares_from_its_exposure_on_and_warns_its_own_contacts_at_f2(sqlite_server, tmp_path):
    a, b, c, d = (phone(tmp_path, name) for name in "abcd")
    day0, day1, day2 = (TODAY - 144 * back for back in (3, 2, 1))
    key_for_day(b, day0)  # B's phone was in use before it met A: that day must never be sent
    met_a = day1 * 600 + 10 * 3600
    meet(a, b, met_a, 30)  # day 1: A and B, half an hour at close range, each hearing the other
    meet(b, a, met_a, 30)
    meet(b, c, day2 * 600 + 15 * 3600, 40)  # day 2: B and C, 40 minutes (F2 alerts after 30)
    key_for_day(d, day2)  # D meets nobody
    issuer = sqlite_server.authority_stub()
    channel = public_channel(sqlite_server)
    pinned = trusted(sqlite_server.tls_dir)

    # Day 3: A is confirmed and shares; B's phone alerts F1 for day 1.
    code = issuer.IssueCode(authority_pb2.IssueCodeRequest(report_type=ReportType.CONFIRMED_TEST), timeout=10).code
    assert share(channel, a, code, NOW).accepted == 1  # its key of day 1
    publish(sqlite_server, now=NOW + 3600)
    sync(channel, b, pinned)
    assert [(day.day, day.level, day.alert) for day in check(b)] == [(str(day_of(day1)), "F1", True)]

    # The authority designates B an F1 contact: a RECURSIVE code for the day of B's exposure. B shares from it on.
    exposure = exposure_day(b, config_in_force(b.get("config")))
    assert exposure == day_of(day1)
    contact_code = issuer.IssueCode(
        authority_pb2.IssueCodeRequest(
            report_type=ReportType.RECURSIVE,
            exposure_date=exposure.isoformat(),
            exposure_level=authority_pb2.EXPOSURE_LEVEL_F1,
        ),
        timeout=10,
    ).code
    request = share_request(b, contact_code, NOW, since=exposure)
    assert sorted(k.rolling_start_interval_number for k in request.keys) == [day1, day2]  # never day 0
    assert share(channel, b, contact_code, NOW, since=exposure).accepted == 2
    publish(sqlite_server, now=NOW + 7200)

    for contact in (c, d):
        sync(channel, contact, pinned)
    [c_day] = check(c)
    assert (c_day.day, c_day.level, c_day.alert) == (str(day_of(day2)), "F2", True)
    assert check(d) == []


def keep_recursive_batch(contact: PhoneStore, shared: PhoneStore) -> None:
    """A verified batch in ``contact``'s store holding ``shared``'s keys as a case's contact's (RECURSIVE)."""
    signing = generate_signing_key()
    keys = [DiagnosisKey(tek, start, period, ReportType.RECURSIVE) for start, tek, period in shared.own_keys()]
    built = build_batch(
        keys,
        sequence=1,
        published_at=NOW,
        region="VN",
        config=default_config(),
        signing_key=signing,
        error_rate=error_rate_for(),
    )
    contact.keep_batch(1, sign_header(built.header, signing).SerializeToString(), NOW, built.body)


def test_a_phone_warned_only_at_f2_does_not_share_as_a_contact(tmp_path):
    b, c = phone(tmp_path, "b"), phone(tmp_path, "c")
    with pytest.raises(NotAContact, match="no F1 alert"):
        exposure_day(c, config_in_force(None))
    # C's only alert is F2 (near B, a case's contact): it is not asked to share, so warnings stop at F2
    sightings = [
        (broadcast_at(b, MEETING + s).rpi, interval_number(MEETING + s), MEETING + s, CLOSE_RANGE_RSSI, bytes(4))
        for s in range(0, 2400, 300)
    ]
    c.add_sightings(sightings)
    keep_recursive_batch(c, b)
    with pytest.raises(NotAContact, match="warnings stop at F2"):
        exposure_day(c, config_in_force(None))
