"""A hypothesis-driven fuzzer against the live server: more than 10,000 hostile requests to every RPC
(tests/fuzz/hostile.py makes them), sent from several threads, each answered with a documented status code.

- A request that decodes and fits the limits gets one of its RPC's documented codes, never UNKNOWN or INTERNAL,
  and a refusal carries a human message.
- Bytes that do not decode as the request message (random bytes, a cut, invalid UTF-8 in a string field) get
  INTERNAL "Exception deserializing request!" from grpcio itself, before any code of ours runs: the one
  exception the design documents. The service's own call counter shows that it answered no INTERNAL itself.
- A request over 64 KiB, or with metadata over grpcio's 16 KiB limit, gets RESOURCE_EXHAUSTED from grpcio.

Afterwards the server still answers health SERVING, and the store holds exactly the keys the server said it
accepted, every one of them valid (nothing invalid stored, nothing accepted lost).
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections import Counter
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients.launch import Server
from exposure.v1 import authority_pb2, distribution_pb2, keys_pb2, sharing_pb2
from matcher import codes, venues
from matcher.errors import violations_of
from matcher.exposure_config import open_config
from matcher.model import PUBLISHABLE_REPORT_TYPES, DiagnosisKey, VenueHour
from matcher.signing import TrustedKeys, load_verifying_key
from matcher.store.sqlite import SqliteStore
from matcher.validation import check_key
from tests.fuzz.conftest import NARROW, WIDE
from tests.fuzz.hostile import (
    DEFAULT_REGION,
    DOCUMENTED,
    HOW,
    REQUEST_TYPES,
    SERVICES,
    UNDECODABLE,
    UNDECODABLE_DETAILS,
    Hostile,
    Outcome,
    expected_codes,
    hostile_requests,
    send,
)
from tests.integration.harness import NOW
from tests.integration.test_service import publish
from tests.support.submitters import SERVING, health, unique_key

REQUESTS = 10_000
OVERSIZED = 200  # past grpcio's metadata or message limits, made apart so that they are a known share
BATCH = 25  # requests per hypothesis example
THREADS = 32  # grpcio refuses an oversized request after a pause (about 0.1 s): the other threads go on meanwhile
C = grpc.StatusCode

Stored = tuple[int, int | None, str]  # rolling period, TX power, region: what the store must hold for a key


class Campaign:
    """Sends hostile requests from a pool of threads as hypothesis makes them, checks each answer as it comes,
    and remembers what the server accepted. Failures are collected and reported at the end, each with the exact
    bytes that were sent (hypothesis cannot shrink them: it has moved on by then)."""

    def __init__(self, server: Server) -> None:
        self.channels = {
            "wide": server.authority_channel(WIDE),
            "narrow": server.authority_channel(NARROW),
            "phone": server.public_channel(),
        }
        self.pool = futures.ThreadPoolExecutor(THREADS)
        self.in_flight: list[futures.Future] = []
        self.issued: list[tuple[str, str]] = []  # (code, region) of every code the server issued
        self.accepted: dict[tuple[bytes, int], set[Stored]] = {}
        self.warned: dict[tuple[bytes, int], set[str]] = {}  # (identifier, hour) warned -> regions it was warned in
        self.seen: Counter[tuple[str, str]] = Counter()  # (rpc, code name)
        self.hows: Counter[str] = Counter()
        self.failures: list[str] = []
        self.sent = 0
        self._lock = threading.Lock()

    def submit(self, requests: list[Hostile]) -> None:
        self.in_flight += [self.pool.submit(self.one, request) for request in requests]

    def one(self, request: Hostile) -> None:
        with self._lock:
            payload = request.payload(self.issued)
        outcome = send(self.channels[request.channel], request, payload)
        with self._lock:
            self.sent += 1
            self.seen[request.rpc, outcome.code.name] += 1
            self.hows[request.how] += 1
            try:
                check(request, payload, outcome)
            except AssertionError as failure:
                self.failures.append(str(failure))
            if outcome.code == C.OK:
                self.remember(request, payload, outcome)

    def finish(self) -> None:
        for done in self.in_flight:
            done.result()
        self.pool.shutdown()
        assert not self.failures, f"{len(self.failures)} answers were not documented ones:\n" + "\n".join(
            self.failures[:10]
        )

    def remember(self, request: Hostile, payload: bytes, outcome: Outcome) -> None:
        if request.rpc == "IssueCode":
            region = REQUEST_TYPES["IssueCode"].FromString(payload).region or DEFAULT_REGION[request.channel]
            self.issued.append((authority_pb2.IssueCodeResponse.FromString(outcome.responses[0]).code, region))
        elif request.rpc == "SubmitKeys":
            sent = authority_pb2.SubmitKeysRequest.FromString(payload)
            answer = authority_pb2.SubmitKeysResponse.FromString(outcome.responses[0])
            self.accept(sent.keys, answer.rejected, sent.region or DEFAULT_REGION[request.channel])
        elif request.rpc == "SubmitWithCode" and not sharing_pb2.SubmitWithCodeRequest.FromString(payload).decoy:
            # (a decoy accepted is remembered as nothing: the check of the store at the end holds it to that)
            sent = sharing_pb2.SubmitWithCodeRequest.FromString(payload)
            answer = sharing_pb2.SubmitWithCodeResponse.FromString(outcome.responses[0])
            regions = {codes.normalise(code): region for code, region in self.issued}
            self.accept(sent.keys, answer.rejected, regions[codes.normalise(sent.code)])
        elif request.rpc == "SubmitVenueWarning":
            sent = authority_pb2.SubmitVenueWarningRequest.FromString(payload)
            hours = np.arange(sent.first_hour, sent.last_hour + 1)
            identifiers = venues.hour_identifiers(venues.venue_id_of(sent.venue_public_key), hours)
            region = sent.region or DEFAULT_REGION[request.channel]
            for identifier, hour in zip(identifiers, hours):
                self.warned.setdefault((identifier.tobytes(), int(hour)), set()).add(region)

    def accept(self, keys, rejected, region: str) -> None:
        refused = {rejection.index for rejection in rejected}
        for index, key in enumerate(keys):
            if index not in refused:
                # the fuzzed authority does not prune to contact intervals: none is stored
                stored = (key.rolling_period or 144, None, region)
                self.accepted.setdefault((key.key_data, key.rolling_start_interval_number), set()).add(stored)


def check(request: Hostile, payload: bytes, outcome: Outcome) -> None:
    allowed = expected_codes(request, payload)
    assert outcome.code in allowed, (
        f"{request!r} got {outcome.code.name} {outcome.details!r}; documented: {sorted(c.name for c in allowed)}"
    )
    if outcome.code == UNDECODABLE:
        assert outcome.details == UNDECODABLE_DETAILS, f"{request!r}: {outcome.details!r}"
    elif outcome.code != C.OK:
        assert outcome.details, f"{request!r} got {outcome.code.name} without a message"
    if outcome.code == C.INVALID_ARGUMENT:
        violations_of(outcome.error)  # the details parse as google.rpc.Status


def metric_lines(server: Server) -> list[str]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics}/metrics", timeout=10).read().decode()
    return [line for line in text.splitlines() if line.startswith("matcher_rpc_total{")]


def as_proto(key: DiagnosisKey) -> keys_pb2.DiagnosisKey:
    proto = keys_pb2.DiagnosisKey(
        key_data=key.key_data,
        rolling_start_interval_number=key.rolling_start,
        rolling_period=key.rolling_period,
        report_type=key.report_type,
    )
    if key.days_since_onset is not None:
        proto.days_since_onset_of_symptoms = key.days_since_onset
    if key.contact_intervals is not None:
        proto.contact_intervals = key.contact_intervals
    return proto


def test_ten_thousand_hostile_requests_get_documented_codes_keep_the_server_up_and_store_nothing_invalid(
    fuzz_server: Server, fuzz_pki: Path
):
    # One published batch, so that downloads can succeed and offsets can be past its end. Its one key is valid
    # for one interval: a tiny body, so that a download in 1-byte chunks takes a few dozen messages.
    tiny = unique_key("fuzz", 1)
    tiny.rolling_period = 1
    fuzz_server.authority_stub(WIDE).SubmitKeys(
        authority_pb2.SubmitKeysRequest(submission_id="before", keys=[tiny]), timeout=10
    )
    assert len(publish(fuzz_server, now=NOW)) == 1
    campaign = Campaign(fuzz_server)

    def attack(requests: int, oversized: bool) -> None:
        @settings(
            max_examples=-(-requests // BATCH), deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(st.lists(hostile_requests(oversized), min_size=BATCH, max_size=BATCH))
        def examples(batch: list[Hostile]) -> None:
            campaign.submit(batch)

        examples()

    began = time.perf_counter()
    attack(REQUESTS, oversized=False)
    attack(OVERSIZED, oversized=True)
    campaign.finish()
    seconds = time.perf_counter() - began

    assert campaign.sent >= REQUESTS + OVERSIZED
    assert set(campaign.hows) == {*HOW, "huge"} and {rpc for rpc, _ in campaign.seen} == set(REQUEST_TYPES)
    for rpc in (
        "SubmitKeys",
        "IssueCode",
        "SetExposureConfig",
        "SubmitWithCode",
        "DownloadBatch",
        "SubmitVenueWarning",
    ):
        assert campaign.seen[rpc, "OK"] > 0, f"no {rpc} got through: the fuzzer only tested refusals of it"
    assert fuzz_server.process.poll() is None and health(fuzz_server.public_channel()) == SERVING
    # Everything undecodable was refused by grpcio, never by us: the service counted no INTERNAL and no UNKNOWN.
    assert not [line for line in metric_lines(fuzz_server) if re.search(r'code="(INTERNAL|UNKNOWN)"', line)]

    store = SqliteStore(fuzz_server.store.removeprefix("sqlite:"))
    everything = store.pending_keys(now=2**40, limit=10**6)
    pending = [p for p in everything if isinstance(p.key, DiagnosisKey)]
    # Warned venue hours: exactly those of the warnings answered OK, each held once (in the region that warned first).
    held = [p for p in everything if isinstance(p.key, VenueHour)]
    hours = {(p.key.identifier, p.key.hour): p.region for p in held}
    assert len(hours) == len(held) and set(hours) == set(campaign.warned)
    assert all(region in campaign.warned[hour] for hour, region in hours.items())
    stored = {(p.key.key_data, p.key.rolling_start): p for p in pending}
    assert len(stored) == len(pending) and set(stored) == set(campaign.accepted)
    for fingerprint, held in stored.items():
        assert (held.key.rolling_period, held.key.contact_intervals, held.region) in campaign.accepted[fingerprint]
        assert held.key.report_type in PUBLISHABLE_REPORT_TYPES and held.region in ("VN", "TH")
        assert check_key(as_proto(held.key), "key", now=NOW, retention_days=14) == [], held
    signed = fuzz_server.distribution_stub().GetExposureConfig(distribution_pb2.GetExposureConfigRequest(), timeout=10)
    open_config(signed, TrustedKeys([load_verifying_key(fuzz_pki / "server" / "signing.pub.pem")]))  # valid and signed
    print(
        f"{campaign.sent} requests in {seconds:.1f} s; answers by RPC and code: {dict(sorted(campaign.seen.items()))}; "
        f"{len(stored)} keys stored"
    )


def test_the_threat_model_lists_the_codes_the_fuzzer_holds_each_rpc_to():
    text = (Path(__file__).resolve().parents[2] / "docs" / "threat-model.md").read_text()
    rows = re.findall(r"^\| (\w+)\.(\w+) \| ([A-Z_, ]+) \|$", text, flags=re.MULTILINE)
    documented = {rpc: frozenset(getattr(C, code) for code in codes_.split(", ")) for _, rpc, codes_ in rows}
    assert documented == DOCUMENTED
    assert {rpc: service for service, rpc, _ in rows} == SERVICES
