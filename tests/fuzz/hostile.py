"""Hostile requests for every RPC, as hypothesis strategies, and what the server may answer to each.

A request is a method, a channel (an authority with every right, a narrow authority, or a phone on the public
port), a payload and metadata. Payloads are protobuf messages with hostile values in every field (random bytes
and text, wrong sizes, far past and future intervals, 31 keys, a key twice, huge strings, NaN weights, uint64
extremes), or such a message turned into bytes that break the wire format: random bytes, a cut, a flipped bit,
invalid UTF-8 in a string field, an unknown field that makes it huge (past the 64 KiB request limit) or merely
large. Metadata is empty, ordinary, or past grpcio's limits.

DOCUMENTED is the contract the fuzzer holds the server to; docs/threat-model.md prints it and a test checks that
both agree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

import grpc
from google.protobuf.message import DecodeError, Message
from hypothesis import strategies as st

from exposure.v1 import authority_pb2, distribution_pb2, keys_pb2, sharing_pb2
from matcher import codes
from matcher.exposure_config import default_config
from matcher.model import SUBMISSION_ID_ALPHABET
from matcher.server import MAX_REQUEST_BYTES
from matcher.venues import VenueOwner
from tests.integration.harness import NOW, TODAY

C = grpc.StatusCode

REQUEST_TYPES: dict[str, type[Message]] = {
    "SubmitKeys": authority_pb2.SubmitKeysRequest,
    "IssueCode": authority_pb2.IssueCodeRequest,
    "SetExposureConfig": authority_pb2.SetExposureConfigRequest,
    "SubmitWithCode": sharing_pb2.SubmitWithCodeRequest,
    "ListBatches": distribution_pb2.ListBatchesRequest,
    "DownloadBatch": distribution_pb2.DownloadBatchRequest,
    "GetExposureConfig": distribution_pb2.GetExposureConfigRequest,
    "SubmitVenueWarning": authority_pb2.SubmitVenueWarningRequest,
}
SERVICES = {
    "SubmitKeys": "Authority",
    "IssueCode": "Authority",
    "SetExposureConfig": "Authority",
    "SubmitVenueWarning": "Authority",
    "SubmitWithCode": "Sharing",
    "ListBatches": "Distribution",
    "DownloadBatch": "Distribution",
    "GetExposureConfig": "Distribution",
}
AUTHORITY_RPCS = frozenset(rpc for rpc, service in SERVICES.items() if service == "Authority")

# What a request that decodes and is within the size limits may get, by RPC, from a caller allowed to use it.
# (Every RPC may also get UNAVAILABLE while storage is down and RESOURCE_EXHAUSTED over a rate limit; neither
# happens in the fuzz run, whose store is up and whose authorities have no practical limit, so neither is allowed.)
DOCUMENTED: dict[str, frozenset[grpc.StatusCode]] = {
    "SubmitKeys": frozenset({C.OK, C.INVALID_ARGUMENT, C.ALREADY_EXISTS, C.PERMISSION_DENIED}),
    "IssueCode": frozenset({C.OK, C.INVALID_ARGUMENT, C.PERMISSION_DENIED}),
    "SetExposureConfig": frozenset({C.OK, C.INVALID_ARGUMENT, C.PERMISSION_DENIED}),
    "SubmitWithCode": frozenset({C.OK, C.INVALID_ARGUMENT, C.PERMISSION_DENIED}),
    "ListBatches": frozenset({C.OK, C.INVALID_ARGUMENT}),
    "DownloadBatch": frozenset({C.OK, C.NOT_FOUND, C.OUT_OF_RANGE}),
    "GetExposureConfig": frozenset({C.OK}),
    "SubmitVenueWarning": frozenset({C.OK, C.INVALID_ARGUMENT, C.ALREADY_EXISTS, C.PERMISSION_DENIED}),
}
# grpcio's own answers, before any code of ours runs.
UNDECODABLE = C.INTERNAL  # bytes that do not parse as the request message
UNDECODABLE_DETAILS = "Exception deserializing request!"
METADATA_SOFT_LIMIT = 8 * 1024  # grpcio may refuse metadata above this, with a probability that grows ...
METADATA_HARD_LIMIT = 16 * 1024  # ... to certainty at this size: RESOURCE_EXHAUSTED

# Channels: "wide" and "narrow" are ha-wide and ha-narrow on the authority port, "phone" the public port.
DEFAULT_REGION = {"wide": "VN", "narrow": "TH"}


def allowed_codes(rpc: str, channel: str) -> frozenset[grpc.StatusCode]:
    """The documented codes of a well-formed request of ``rpc`` from ``channel``."""
    if rpc in AUTHORITY_RPCS and channel == "phone":
        return frozenset({C.UNAUTHENTICATED})
    if rpc == "SetExposureConfig" and channel == "narrow":
        return frozenset({C.PERMISSION_DENIED})
    return DOCUMENTED[rpc]


@dataclass(frozen=True)
class Hostile:
    """One request to send. ``code_slot`` (SubmitWithCode only) picks one of the codes issued so far."""

    rpc: str
    channel: str
    how: str
    message: Message | None = None
    raw: bytes | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    code_slot: int | None = None

    def payload(self, issued: list[tuple[str, str]]) -> bytes:
        if self.raw is not None:
            return self.raw
        message = self.message
        if self.code_slot is not None and issued:
            message = sharing_pb2.SubmitWithCodeRequest()
            message.CopyFrom(self.message)
            message.code = issued[self.code_slot % len(issued)][0]
        return message.SerializeToString()

    def metadata_bytes(self) -> int:
        return sum(len(k) + len(v) for k, v in self.metadata)

    def __repr__(self) -> str:  # what hypothesis prints for a failing example: short and exact
        body = self.raw if self.raw is not None else self.message.SerializeToString()
        shown = body[:96].hex() + ("..." if len(body) > 96 else "")
        return (
            f"Hostile({self.rpc} as {self.channel}, {self.how}, {len(body)} bytes {shown}, "
            f"metadata {self.metadata_bytes()} bytes, code_slot={self.code_slot})"
        )


def expected_codes(hostile: Hostile, payload: bytes) -> frozenset[grpc.StatusCode]:
    """grpcio checks the metadata first, then the size, then decodes; then the service answers."""
    if hostile.metadata_bytes() > METADATA_HARD_LIMIT or len(payload) > MAX_REQUEST_BYTES:
        return frozenset({C.RESOURCE_EXHAUSTED})
    found = (
        frozenset({UNDECODABLE}) if not decodes(hostile.rpc, payload) else allowed_codes(hostile.rpc, hostile.channel)
    )
    if hostile.metadata_bytes() > METADATA_SOFT_LIMIT - 1024:  # near or past the soft limit: grpcio may refuse
        found |= {C.RESOURCE_EXHAUSTED}
    return found


def decodes(rpc: str, payload: bytes) -> bool:
    try:
        REQUEST_TYPES[rpc].FromString(payload)
    except DecodeError:
        return False
    return True


# --- field values ----------------------------------------------------------------------------------------------

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
s32 = st.integers(-(2**31), 2**31 - 1)
TODAY_DATE = dt.date.fromtimestamp(NOW)


def long_text(low: int = 130, high: int = 3000) -> st.SearchStrategy[str]:
    """A long string without making hypothesis draw every character: one character repeated."""
    return st.tuples(st.characters(codec="utf-8"), st.integers(low, high)).map(lambda t: t[0] * t[1])


text = st.one_of(st.text(max_size=24), long_text())
intervals = st.one_of(
    st.integers(TODAY - 16 * 144, TODAY + 2 * 144),  # around the retention window and now
    u32,  # far past and far future
    st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1]),
)
key_data = st.one_of(
    st.binary(min_size=16, max_size=16),
    st.binary(max_size=40),
    st.integers(41, 4000).map(lambda n: b"\xa5" * n),
)


def diagnosis_key(data, start, period, report_type, days, tx_power, contacts=b"") -> keys_pb2.DiagnosisKey:
    key = keys_pb2.DiagnosisKey(
        key_data=data,
        rolling_start_interval_number=start,
        rolling_period=period,
        report_type=report_type,
        contact_intervals=contacts,
    )
    if days is not None:
        key.days_since_onset_of_symptoms = days
    if tx_power is not None:
        key.tx_power_dbm = tx_power
    return key


hostile_key = st.builds(
    diagnosis_key,
    key_data,
    intervals,
    st.one_of(st.integers(0, 150), u32),
    st.one_of(st.integers(0, 6), s32),
    st.none() | st.integers(-16, 16) | s32,
    st.none() | st.integers(-45, 25) | s32,
    st.binary(max_size=24),  # contact-interval bitmaps of every size, 18 bytes among them
)
plausible_key = st.builds(  # mostly valid: some requests must get through to storage
    diagnosis_key,
    st.binary(min_size=16, max_size=16),
    st.integers(TODAY - 13 * 144, TODAY - 144),
    st.sampled_from([0, 1, 72, 144]),
    st.integers(1, 3),
    st.none() | st.integers(-3, 12),
    st.none() | st.integers(-40, 20),
    st.sampled_from([b"", b"\x01" + bytes(17)]),
)
a_key = st.one_of(hostile_key, plausible_key)


def spread(keys: list[keys_pb2.DiagnosisKey], count: int) -> list[keys_pb2.DiagnosisKey]:
    """``count`` keys made from a few drawn ones, each copy with other key data (drawing 31 keys one by one
    would make hypothesis spend its time here)."""
    made = []
    for n in range(count):
        key = keys_pb2.DiagnosisKey()
        key.CopyFrom(keys[n % len(keys)])
        key.key_data = key.key_data[:-1] + bytes([(key.key_data[-1:] or b"\0")[0] ^ (n // len(keys))])
        made.append(key)
    return made


key_lists = st.one_of(
    st.lists(a_key, max_size=6),
    st.tuples(st.lists(a_key, min_size=1, max_size=3), st.sampled_from([29, 30, 31, 45])).map(lambda t: spread(*t)),
    st.lists(a_key, min_size=1, max_size=4).map(lambda keys: keys + keys[-1:]),  # a key twice
)
regions = st.sampled_from(["allowed"] * 3 + ["wrong", "any"]).flatmap(
    lambda kind: {
        "allowed": st.sampled_from(["", "VN", "TH"]),
        "wrong": st.sampled_from(["US", "vn", "V", "VNM"]),
        "any": text,
    }[kind]
)
ID_ALPHABET = "".join(sorted(SUBMISSION_ID_ALPHABET))
submission_ids = st.sampled_from(["pattern"] * 3 + ["again", "any"]).flatmap(
    lambda kind: {
        "pattern": st.text(ID_ALPHABET, min_size=1, max_size=130),
        "again": st.sampled_from(["again-1", "again-2", "again-3"]),  # replays and conflicts
        "any": text,
    }[kind]
)
dates = st.one_of(
    st.just(""),
    st.dates(TODAY_DATE - dt.timedelta(days=40), TODAY_DATE + dt.timedelta(days=3)).map(str),
    st.dates().map(str),
    text,
)
report_types = st.one_of(st.sampled_from([1, 2, 3]), st.integers(0, 6), s32)
doubles = st.floats(allow_nan=True, allow_infinity=True)


def config(thresholds, weights, scalars, days, missing, minimum, cap, tx_power, version, issued):
    made = default_config()
    if thresholds is not None:
        made.attenuation_thresholds_db[:] = thresholds
    if weights is not None:
        made.attenuation_weights[:] = weights
    for name, value in scalars.items():
        setattr(made, name, value)
    if days is not None:
        made.infectiousness_for_days_since_onset.clear()
        made.infectiousness_for_days_since_onset.update(days)
    for name, value in [
        ("infectiousness_when_days_since_onset_missing", missing),
        ("minimum_weighted_minutes_per_day", minimum),
        ("sighting_credit_cap_seconds", cap),
        ("tx_power_dbm_when_unknown", tx_power),
        ("version", version),
        ("issued_at", issued),
    ]:
        if value is not None:
            setattr(made, name, value)
    return made


configs = st.builds(
    config,
    st.none() | st.lists(u32, max_size=5),
    st.none() | st.lists(doubles, max_size=6),
    st.dictionaries(
        st.sampled_from(
            [
                "weight_confirmed_test",
                "weight_confirmed_clinical_diagnosis",
                "weight_self_report",
                "weight_infectiousness_standard",
                "weight_infectiousness_high",
            ]
        ),
        doubles,
    ),
    st.none() | st.dictionaries(st.integers(-20, 20) | s32, st.integers(-1, 4) | s32, max_size=40),
    st.none() | st.integers(-1, 4) | s32,
    st.none() | doubles,
    st.none() | st.integers(0, 700) | u32,
    st.none() | st.integers(-50, 30) | s32,
    st.none() | u64,
    st.none() | st.integers(-(2**63), 2**63 - 1),
)
valid_configs = st.builds(
    lambda minimum, cap: config(None, None, {}, None, None, minimum, cap, None, None, None),
    st.floats(1, 60),
    st.integers(1, 600),
)
well_formed_codes = st.lists(st.sampled_from(codes.ALPHABET), min_size=codes.LENGTH, max_size=codes.LENGTH).map(
    lambda chars: codes.display("".join(chars))
)

FUZZ_VENUE = VenueOwner.from_seed(bytes(range(32)), "a fuzzed venue")
NOW_HOUR = NOW // 3600


def venue_warning(submission_id: str, first: int, last: int, region: str, signed: str) -> Message:
    """A warning of the fuzzed venue; ``signed``: by its owner ("owner"), by nobody ("garbage"), or for other hours."""
    signature = {
        "owner": FUZZ_VENUE.sign_warning(first, last),
        "garbage": bytes(64),
        "other hours": FUZZ_VENUE.sign_warning(first, (last + 1) % 2**32),
    }[signed]
    return authority_pb2.SubmitVenueWarningRequest(
        submission_id=submission_id,
        venue_public_key=FUZZ_VENUE.venue.public_key,
        first_hour=first,
        last_hour=last,
        owner_signature=signature,
        region=region,
    )


hostile_hours = st.one_of(st.integers(NOW_HOUR - 400, NOW_HOUR + 3), u32)
MESSAGES: dict[str, st.SearchStrategy[Message]] = {
    "SubmitKeys": st.builds(
        lambda i, k, r: authority_pb2.SubmitKeysRequest(submission_id=i, keys=k, region=r),
        submission_ids,
        key_lists,
        regions,
    ),
    "IssueCode": st.builds(
        lambda t, d, r, ttl: authority_pb2.IssueCodeRequest(
            report_type=t, symptom_onset_date=d, region=r, ttl_seconds=ttl
        ),
        report_types,
        dates,
        st.one_of(st.sampled_from(["", "VN", "TH"]), regions),
        st.one_of(st.just(0), st.integers(0, 90_000), u32),
    ),
    "SetExposureConfig": st.one_of(
        st.builds(lambda c: authority_pb2.SetExposureConfigRequest(config=c), configs),
        st.builds(lambda c: authority_pb2.SetExposureConfigRequest(config=c), valid_configs),
        st.just(authority_pb2.SetExposureConfigRequest()),
    ),
    "SubmitWithCode": st.builds(
        lambda c, k, d, p: sharing_pb2.SubmitWithCodeRequest(code=c, keys=k, decoy=d, padding=p),
        st.one_of(well_formed_codes, text),
        key_lists,
        st.sampled_from([False, False, True]),  # a decoy (docs/privacy.md): answered like a share, stores nothing
        st.one_of(st.just(b""), st.binary(max_size=2048)),
    ),
    "ListBatches": st.builds(
        lambda a, p: distribution_pb2.ListBatchesRequest(after_sequence=a, page_size=p),
        st.one_of(st.integers(0, 3), u64),
        st.one_of(st.integers(0, 1100), u32),
    ),
    "DownloadBatch": st.builds(
        lambda s, o, c: distribution_pb2.DownloadBatchRequest(sequence=s, offset=o, chunk_size=c),
        st.one_of(st.integers(0, 3), u64, st.sampled_from([2**63 - 1, 2**63, 2**64 - 1])),
        st.one_of(st.integers(0, 400), u64),
        st.one_of(st.integers(0, 64), st.integers(1024, 1 << 21), u32),
    ),
    "GetExposureConfig": st.just(distribution_pb2.GetExposureConfigRequest()),
    "SubmitVenueWarning": st.one_of(
        st.builds(  # mostly valid: owner-signed hours of the last two weeks
            lambda i, first, span, r: venue_warning(i, first, first + span, r, "owner"),
            submission_ids,
            st.integers(NOW_HOUR - 300, NOW_HOUR - 30),
            st.integers(0, 30),
            regions,
        ),
        st.builds(
            venue_warning,
            submission_ids,
            hostile_hours,
            hostile_hours,
            regions,
            st.sampled_from(["owner", "garbage", "other hours"]),
        ),
        st.builds(
            lambda k, s: authority_pb2.SubmitVenueWarningRequest(
                submission_id="v", venue_public_key=k, owner_signature=s
            ),
            st.binary(max_size=40),
            st.binary(max_size=80),
        ),
    ),
}
# A string field of each request type, for invalid UTF-8 (proto3 strings must be UTF-8: grpcio cannot decode it).
STRING_FIELD_TAGS = {
    "SubmitKeys": b"\x0a",
    "IssueCode": b"\x12",
    "SubmitWithCode": b"\x0a",
    "SetExposureConfig": None,
    "ListBatches": None,
    "DownloadBatch": None,
    "GetExposureConfig": None,
    "SubmitVenueWarning": b"\x0a",
}
INVALID_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xc0\xaf"]


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def unknown_field(size: int) -> bytes:
    """Field 1000 (never used), wire type 2, ``size`` bytes: protobuf keeps it as an unknown field."""
    return varint(1000 << 3 | 2) + varint(size) + b"\x00" * size


METADATA = {
    "none": st.just(()),
    "ordinary": st.lists(
        st.tuples(st.sampled_from(["x-trace", "x-client", "x-a"]), st.text("abcdefgh0123456789-", max_size=200)),
        max_size=4,
    ).map(tuple),
    "past the hard limit": st.integers(METADATA_HARD_LIMIT + 100, 60_000).map(lambda n: (("x-huge", "h" * n),)),
    "past the soft limit": st.integers(METADATA_SOFT_LIMIT, METADATA_HARD_LIMIT - 500).map(
        lambda n: (("x-big", "b" * n),)
    ),
}
HOW = ["fields"] * 12 + ["raw bytes"] * 2 + ["cut"] * 2 + ["bit flip"] * 2 + ["invalid UTF-8"] * 2 + ["large", "empty"]


@st.composite
def hostile_requests(draw, oversized: bool = False) -> Hostile:
    """A hostile request; with ``oversized``, one past grpcio's metadata or message limits, and otherwise never
    (grpcio refuses those only after a pause of about 0.1 s: they are kept to a known share of the run)."""
    rpc = draw(st.sampled_from(sorted(REQUEST_TYPES)))
    channel = draw(st.sampled_from(["wide"] * 4 + ["narrow", "phone"] if rpc in AUTHORITY_RPCS else ["phone", "wide"]))
    message = draw(MESSAGES[rpc])
    if oversized:
        shape = draw(st.sampled_from(["past the hard limit", "past the soft limit", "huge"]))
        extra = draw(METADATA[shape]) if shape != "huge" else draw(METADATA["ordinary"])
    else:
        extra = draw(METADATA[draw(st.sampled_from(["none"] * 3 + ["ordinary"]))])
    request = Hostile(rpc, channel, "fields", message=message, metadata=extra)
    if rpc == "SubmitWithCode" and draw(st.booleans()):
        request = replace(request, code_slot=draw(st.integers(0, 1000)))
    if oversized and shape == "huge":
        raw = message.SerializeToString() + unknown_field(draw(st.integers(MAX_REQUEST_BYTES, 4 * MAX_REQUEST_BYTES)))
        return replace(request, how="huge", raw=raw, code_slot=None)
    how = draw(st.sampled_from(HOW))
    serialised = message.SerializeToString()
    room = MAX_REQUEST_BYTES - len(serialised) - 100
    if how == "raw bytes":
        raw = draw(st.binary(max_size=300))
    elif how == "cut" and serialised:
        raw = serialised[: draw(st.integers(0, len(serialised) - 1))]
    elif how == "bit flip" and serialised:
        position = draw(st.integers(0, 8 * len(serialised) - 1))
        flipped = bytearray(serialised)
        flipped[position // 8] ^= 1 << position % 8
        raw = bytes(flipped)
    elif how == "invalid UTF-8" and STRING_FIELD_TAGS[rpc]:
        bad = draw(st.sampled_from(INVALID_UTF8))
        raw = serialised + STRING_FIELD_TAGS[rpc] + varint(len(bad)) + bad
    elif how == "large" and room > 1024:
        raw = serialised + unknown_field(draw(st.integers(1024, room)))
    elif how == "empty":
        raw = b""
    else:
        return request  # "fields", or a change this message has no room for
    return replace(request, how=how, raw=raw, code_slot=None)


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    error: grpc.RpcError | None = None
    responses: list[bytes] = field(default_factory=list)


def identity(data: bytes) -> bytes:
    return data


def send(channel: grpc.Channel, hostile: Hostile, payload: bytes) -> Outcome:
    """Sends the payload as is (no client-side serialisation) and returns what came back."""
    path = f"/exposure.v1.{SERVICES[hostile.rpc]}/{hostile.rpc}"
    try:
        if hostile.rpc == "DownloadBatch":
            call = channel.unary_stream(path, request_serializer=identity, response_deserializer=identity)
            responses = list(call(payload, timeout=30, metadata=hostile.metadata))
        else:
            call = channel.unary_unary(path, request_serializer=identity, response_deserializer=identity)
            responses = [call(payload, timeout=30, metadata=hostile.metadata)]
    except grpc.RpcError as error:
        return Outcome(error.code(), error.details() or "", error)
    return Outcome(C.OK, "", None, responses)
