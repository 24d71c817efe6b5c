"""Batches as the publisher cuts them and as a phone opens them: risk classes, signatures, digests, matching."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from exposure.v1 import batch_pb2
from matcher import batches, crypto
from matcher.batches import BatchRejected, build_batch, match, open_body, open_header, sign_header
from matcher.exposure_config import default_config
from matcher.filters import decode_set
from matcher.intervals import CLOCK_SKEW_SECONDS
from matcher.model import DiagnosisKey, Infectiousness, ReportType
from matcher.signing import TrustedKeys, generate_signing_key

DAY = 2642976  # 2020-04-02
PUBLISHED_AT = (DAY + 3 * 144) * 600  # 2020-04-05 00:00 UTC
ERROR_RATE = 1e-9
SIGNING_KEY = generate_signing_key()
TRUSTED = TrustedKeys([SIGNING_KEY.verifying_key()])


def key(
    n: int,
    start: int = DAY,
    period: int = 144,
    report_type: ReportType = ReportType.CONFIRMED_TEST,
    days_since_onset: int | None = None,
) -> DiagnosisKey:
    key_data = hashlib.sha256(b"key %d" % n).digest()[:16]
    return DiagnosisKey(key_data, start, period, report_type, days_since_onset)


def cut(keys: list[DiagnosisKey], **overrides) -> batches.BuiltBatch:
    arguments = {
        "sequence": 1,
        "published_at": PUBLISHED_AT,
        "region": "VN",
        "config": default_config(),
        "signing_key": SIGNING_KEY,
        "error_rate": ERROR_RATE,
        "salt": bytes(range(16)),
    }
    arguments.update(overrides)
    return build_batch(keys, **arguments)


def opened(built: batches.BuiltBatch) -> tuple[batch_pb2.BatchHeader, list[batches.LoadedSection]]:
    return batches.open_batch(sign_header(built.header, SIGNING_KEY), built.body, TRUSTED)


def observations(k: DiagnosisKey, shift_seconds: int = 0, at: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """What a phone near this key's owner stores: each RPI with the time it was heard, ``at`` seconds into its
    interval by default, plus ``shift_seconds``."""
    rpis = crypto.rpis(k.key_data, k.rolling_start, k.rolling_period)
    return rpis, np.arange(k.rolling_start, k.end_interval) * 600 + at + shift_seconds


# --- Building -------------------------------------------------------------------------------------------------

MIXED = [
    key(1, days_since_onset=0),  # HIGH
    key(2, DAY - 144, days_since_onset=5),  # STANDARD
    key(3, DAY + 144),  # no onset: STANDARD
    key(4, DAY, 37, ReportType.SELF_REPORT),  # a short key
    key(5, DAY - 288, days_since_onset=-10),  # NONE: not published
    key(6, DAY, report_type=ReportType.REVOKED),  # not a publishable report type
    key(7, DAY, report_type=ReportType.CONFIRMED_CLINICAL_DIAGNOSIS),
    key(8, DAY + 144),
]
PUBLISHED = [MIXED[n] for n in (0, 1, 2, 3, 6, 7)]
TESTS_AND_DIAGNOSES = (ReportType.CONFIRMED_TEST, ReportType.CONFIRMED_CLINICAL_DIAGNOSIS)
BOTH_LEVELS = (Infectiousness.STANDARD, Infectiousness.HIGH)


def sections_of(built: batches.BuiltBatch) -> list[tuple[tuple, tuple, int]]:
    return [(tuple(s.report_types), tuple(s.infectiousness), s.count) for s in built.header.sections]


def test_classes_the_configuration_weighs_alike_share_a_section():
    # default weights: tests and clinical diagnoses 1.0, self-reports 0.8; both infectiousness levels 1.0
    assert sections_of(cut(MIXED)) == [
        (TESTS_AND_DIAGNOSES, BOTH_LEVELS, 5 * 144),
        ((ReportType.SELF_REPORT,), BOTH_LEVELS, 37),
    ]
    assert (cut(MIXED).keys_published, cut(MIXED).elements) == (6, 757)


def test_a_configuration_that_weighs_infectiousness_levels_differently_splits_them():
    config = default_config()
    config.weight_infectiousness_standard = 0.6
    config.weight_self_report = 1.0
    assert sections_of(cut(MIXED, config=config)) == [
        ((1, 2, 3), (Infectiousness.STANDARD,), 4 * 144 + 37),
        ((1, 2, 3), (Infectiousness.HIGH,), 144),
    ]


def test_the_header_describes_the_body_and_names_its_signing_key():
    built = cut(MIXED)
    header = built.header
    assert (header.sequence, header.published_at, header.region, header.format_version) == (1, PUBLISHED_AT, "VN", 2)
    assert (header.first_interval, header.last_interval) == (DAY - 144, DAY + 2 * 144 - 1)
    assert header.salt == bytes(range(16)) and header.body_size == len(built.body)
    assert header.body_sha256 == hashlib.sha256(built.body).digest()
    assert (header.signing_key_id, header.signing_key_version) == (SIGNING_KEY.key_id, SIGNING_KEY.version)
    offset = 0
    for info in header.sections:
        data = built.body[info.offset : info.offset + info.length]
        assert info.offset == offset
        assert (
            len(decode_set(data, info.count, info.rice_parameter, info.quotient_bytes, info.hash_range)) == info.count
        )
        offset += info.length
    assert offset == len(built.body)


def test_each_section_gets_its_share_of_the_runs_budget_in_proportion_to_its_elements():
    built = cut(MIXED)  # sections of 720 and 37 elements: squared rates add up to the run's
    rates = [info.count / info.hash_range for info in built.header.sections]
    for info in built.header.sections:
        assert info.hash_range == info.count * math.ceil(1 / (ERROR_RATE * math.sqrt(info.count / 757)))
    assert math.sqrt(sum(r**2 for r in rates)) == pytest.approx(ERROR_RATE, rel=1e-6)
    assert batches.budget_error_rate(built.header) == pytest.approx(ERROR_RATE, rel=1e-6)
    # a batch that is a tenth of its run gets a tenth of the run's squared budget
    tenth = cut([key(1)], run_elements=1440).header
    assert batches.budget_error_rate(tenth) == pytest.approx(ERROR_RATE * math.sqrt(0.1), rel=1e-6)


def test_more_keys_widen_the_hash_range_so_a_lookups_false_positive_rate_stays_put():
    for keys in ([key(1)], [key(n) for n in range(40)]):
        [section] = cut(keys).header.sections
        assert section.hash_range == len(keys) * 144 * math.ceil(1 / ERROR_RATE)
        assert section.count / section.hash_range <= ERROR_RATE


def test_a_batch_without_publishable_keys_has_no_sections_and_an_empty_body():
    built = cut([key(5, days_since_onset=-10), key(6, report_type=ReportType.REVOKED)])
    assert (list(built.header.sections), built.body, built.keys_published, built.elements) == ([], b"", 0, 0)
    header, sections = opened(built)
    assert sections == [] and (match(header, sections, *observations(key(5))).section == -1).all()


def test_a_key_given_twice_is_published_once():
    built = cut([key(1), key(1), key(2)])
    assert (built.keys_published, built.elements, built.header.sections[0].count) == (2, 288, 288)


def test_every_batch_gets_a_fresh_salt_unless_one_is_given():
    first, second = cut([key(1)], salt=None), cut([key(1)], salt=None)
    assert len(first.header.salt) == 16 and first.header.salt != second.header.salt
    assert first.body != second.body
    with pytest.raises(ValueError, match="16 bytes"):
        cut([key(1)], salt=b"short")


def test_groups_of_keys_give_the_same_hashes_as_one_key_at_a_time(monkeypatch):
    keys = [key(n, DAY + n, 144 - n) for n in range(10)]
    whole = batches.key_hashes(keys, bytes(16), 10**12)
    monkeypatch.setattr(batches, "_ELEMENTS_PER_GROUP", 200)
    assert np.array_equal(batches.key_hashes(keys, bytes(16), 10**12), whole)
    rpis, intervals = batches.key_elements(keys)
    assert np.array_equal(rpis[144:287], crypto.rpis(keys[1].key_data, DAY + 1, 143))
    assert intervals[144:287].tolist() == list(range(DAY + 1, DAY + 144))


# --- Matching -------------------------------------------------------------------------------------------------


def test_every_identifier_of_every_published_key_matches_in_its_section_at_its_interval():
    header, sections = opened(cut(MIXED))
    for k in PUBLISHED:
        found = match(header, sections, *observations(k))
        assert len(set(found.section.tolist())) == 1 and found.section[0] >= 0
        assert sections[found.section[0]].section_class == batches.section_of(k, default_config())
        assert found.interval.tolist() == list(range(k.rolling_start, k.end_interval))


def test_keys_that_are_not_published_match_nothing():
    header, sections = opened(cut(MIXED))
    for k in MIXED[4:6]:
        assert (match(header, sections, *observations(k)).section == -1).all()


def test_identifiers_of_intervals_outside_a_keys_validity_match_nothing():
    short = key(4, DAY + 50, 37, ReportType.SELF_REPORT)
    header, sections = opened(cut([short, key(1, DAY)]))
    outside = np.r_[np.arange(DAY, DAY + 50), np.arange(DAY + 87, DAY + 144)]
    rpis = crypto.rpis(short.key_data, DAY, 144)[outside - DAY]
    assert (match(header, sections, rpis, outside * 600 + 300).section == -1).all()


def test_an_identifier_heard_within_the_clock_skew_of_its_interval_matches_there():
    k = key(1)
    header, sections = opened(cut([k]))
    rpis, _ = observations(k)
    starts = np.arange(k.rolling_start, k.end_interval) * 600
    skew = CLOCK_SKEW_SECONDS
    for heard in (starts + 600, starts + 600 + skew - 1, starts - skew, starts - 1):  # the neighbours' edges
        found = match(header, sections, rpis, heard)
        assert (found.section == 0).all() and (found.interval == starts // 600).all()


def test_a_replayed_identifier_beyond_the_clock_skew_matches_nothing():
    k = key(1)
    header, sections = opened(cut([k]))
    rpis, _ = observations(k)
    starts = np.arange(k.rolling_start, k.end_interval) * 600
    skew = CLOCK_SKEW_SECONDS
    for heard in (starts + 600 + skew, starts - skew - 1, starts + 900, starts - 300, starts + 2 * 600, starts + 86400):
        assert (match(header, sections, rpis, heard).section == -1).all()


def test_most_observations_are_tested_at_their_own_interval_only():
    first, last = batches.tested_intervals(np.array([6000, 6119, 6120, 6479, 6480, 6599]))
    assert first.tolist() == [9, 9, 10, 10, 10, 10]
    assert last.tolist() == [10, 10, 10, 10, 11, 11]


def test_observations_made_at_or_after_publication_are_not_tested():
    k = key(1, DAY + 2 * 144)
    header, sections = opened(cut([k]))
    rpis, _ = observations(k)
    just_before = np.full(len(rpis), PUBLISHED_AT - 1)  # the key's last interval, its identifiers all heard late
    found = match(header, sections, rpis[-1:], just_before[-1:])
    assert found.section.tolist() == [0]
    assert match(header, sections, rpis[-1:], just_before[-1:] + 1).section.tolist() == [-1]


def test_only_observations_whose_tested_intervals_reach_the_covered_range_are_tested():
    header = batch_pb2.BatchHeader(
        first_interval=100, last_interval=200, published_at=10**9, sections=[batch_pb2.Section()]
    )
    skew = CLOCK_SKEW_SECONDS
    seen = np.array([100 * 600 - skew - 1, 100 * 600 - skew, 201 * 600 + skew - 1, 201 * 600 + skew, 150 * 600])
    assert batches.eligible(header, seen).tolist() == [False, True, True, False, True]
    header.published_at = 150 * 600
    assert batches.eligible(header, seen).tolist() == [False, True, False, False, False]


# --- Verifying ------------------------------------------------------------------------------------------------


def flipped(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def test_a_signed_header_opens_to_exactly_the_header_that_was_signed():
    built = cut(MIXED)
    assert open_header(sign_header(built.header, SIGNING_KEY), TRUSTED) == built.header


def test_one_flipped_bit_anywhere_in_the_signed_header_or_its_signature_is_refused():
    signed = sign_header(cut([key(4, DAY, 37)]).header, SIGNING_KEY)
    for field in ("header", "signature"):
        data = getattr(signed, field)
        for bit in range(len(data) * 8):
            tampered = batch_pb2.SignedBatchHeader()
            tampered.CopyFrom(signed)
            setattr(tampered, field, flipped(data, bit))
            with pytest.raises(BatchRejected, match="refused"):
                open_header(tampered, TRUSTED)


def test_one_flipped_bit_anywhere_in_a_batch_file_is_refused(tmp_path):
    built = cut([key(4, DAY, 37)])
    path = tmp_path / "batch.bin"
    batches.write_batch_file(path, sign_header(built.header, SIGNING_KEY), built.body)
    intact = path.read_bytes()
    batches.open_batch(*batches.read_batch_file(path), TRUSTED)
    for bit in range(len(intact) * 8):
        path.write_bytes(flipped(intact, bit))
        with pytest.raises(BatchRejected):
            batches.open_batch(*batches.read_batch_file(path), TRUSTED)


def test_after_a_key_rotation_batches_signed_with_either_pinned_key_are_accepted():
    new_key = generate_signing_key(version="v2")
    trusted = TrustedKeys([SIGNING_KEY.verifying_key(), new_key.verifying_key()])
    old_batch, new_batch = cut([key(1)]), cut([key(2)], signing_key=new_key, sequence=2)
    assert open_header(sign_header(old_batch.header, SIGNING_KEY), trusted).signing_key_version == "v1"
    assert open_header(sign_header(new_batch.header, new_key), trusted).signing_key_version == "v2"
    with pytest.raises(BatchRejected, match="not one of the pinned keys"):
        open_header(sign_header(new_batch.header, new_key), TRUSTED)


def test_one_flipped_bit_anywhere_in_the_body_is_refused():
    built = cut([key(4, DAY, 37)])
    header = open_header(sign_header(built.header, SIGNING_KEY), TRUSTED)
    for bit in range(len(built.body) * 8):
        with pytest.raises(BatchRejected, match="SHA-256"):
            open_body(header, flipped(built.body, bit))


def test_a_body_of_the_wrong_length_is_refused():
    built = cut([key(1)])
    header = open_header(sign_header(built.header, SIGNING_KEY), TRUSTED)
    for body in (built.body[:-1], built.body + b"\0", b""):
        with pytest.raises(BatchRejected, match="bytes"):
            open_body(header, body)


def test_a_header_signed_by_a_key_that_is_not_pinned_is_refused():
    stranger = generate_signing_key()
    signed = sign_header(cut([key(1)], signing_key=stranger).header, stranger)
    with pytest.raises(BatchRejected, match="not one of the pinned keys"):
        open_header(signed, TRUSTED)


def test_a_header_presented_under_another_key_version_than_it_was_signed_with_is_refused():
    signed = sign_header(cut([key(1)]).header, SIGNING_KEY)
    signed.key_version = "v2"
    with pytest.raises(BatchRejected, match="presented as"):
        open_header(signed, TRUSTED)


def test_signing_a_header_that_names_another_key_is_a_programming_error():
    header = cut([key(1)]).header
    with pytest.raises(ValueError, match="names signing key"):
        sign_header(header, generate_signing_key())


def signed_with(header: batch_pb2.BatchHeader) -> batch_pb2.BatchHeader:
    """A header as the (trusted) server signed it: the checks that follow are on content, not signature."""
    return open_header(sign_header(header, SIGNING_KEY), TRUSTED)


def edited(built: batches.BuiltBatch, change) -> batch_pb2.BatchHeader:
    header = batch_pb2.BatchHeader()
    header.CopyFrom(built.header)
    change(header)
    return header


def test_a_batch_of_another_publication_format_is_refused():
    for version in (0, 1, 3):
        header = edited(cut([key(1)]), lambda h: setattr(h, "format_version", version))
        with pytest.raises(BatchRejected, match=f"format {version}; this phone reads format 2"):
            signed_with(header)


def test_a_section_whose_coding_disagrees_with_its_bytes_is_refused():
    built = cut([key(1)])
    for field, delta in (("count", 1), ("count", -1), ("rice_parameter", 1), ("quotient_bytes", 1)):
        header = edited(built, lambda h: setattr(h.sections[0], field, getattr(h.sections[0], field) + delta))
        with pytest.raises(BatchRejected, match="section 0"):
            open_body(signed_with(header), built.body)
    for hash_range in (built.header.sections[0].hash_range // 1000, 0, 2**56 + 1):
        other = edited(built, lambda h: setattr(h.sections[0], "hash_range", hash_range))
        with pytest.raises(BatchRejected, match="hash range"):
            open_body(signed_with(other), built.body)


def test_a_body_whose_sections_are_not_laid_out_in_header_order_is_refused():
    built = cut(MIXED)

    def swap(h: batch_pb2.BatchHeader) -> None:
        h.sections[0].offset, h.sections[1].offset = h.sections[1].offset, h.sections[0].offset

    with pytest.raises(BatchRejected, match="not at 0 where the previous one ended"):
        open_body(signed_with(edited(built, swap)), built.body)


def test_two_sections_covering_one_risk_class_or_an_unpublished_class_are_refused():
    built = cut(MIXED)

    def overlap(h: batch_pb2.BatchHeader) -> None:
        h.sections[1].report_types.append(ReportType.CONFIRMED_TEST)

    with pytest.raises(BatchRejected, match="an earlier section covers"):
        open_body(signed_with(edited(built, overlap)), built.body)
    for field, values in (
        ("infectiousness", [Infectiousness.NONE]),
        ("infectiousness", []),
        ("report_types", [ReportType.REVOKED]),
        ("report_types", []),
        ("report_types", [ReportType.SELF_REPORT, ReportType.SELF_REPORT]),
    ):
        header = edited(
            built, lambda h: (h.sections[1].ClearField(field), getattr(h.sections[1], field).extend(values))
        )
        with pytest.raises(BatchRejected, match="not distinct published"):
            open_body(signed_with(header), built.body)


# --- Files and inspection -------------------------------------------------------------------------------------


def test_a_batch_file_round_trips_and_starts_with_the_magic(tmp_path):
    built = cut(MIXED)
    signed = sign_header(built.header, SIGNING_KEY)
    path = tmp_path / "batch-1.bin"
    batches.write_batch_file(path, signed, built.body)
    data = path.read_bytes()
    envelope = signed.SerializeToString(deterministic=True)
    assert data == b"EXPOSURE BATCH 2" + len(envelope).to_bytes(4, "little") + envelope + built.body
    assert batches.read_batch_file(path) == (signed, built.body)
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not a batch file"),
        (b"GAEN EXPORT FILE\0\0\0\0", "not a batch file"),
        (b"EXPOSURE BATCH 1" + (4).to_bytes(4, "little") + b"abcd", "not a batch file of format 2"),
        (b"EXPOSURE BATCH 2" + (100).to_bytes(4, "little") + b"x", "truncated"),
        (b"EXPOSURE BATCH 2" + (1).to_bytes(4, "little") + b"\xff", "does not parse"),
    ],
)
def test_a_file_that_is_not_a_batch_is_refused_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(BatchRejected, match=reason):
        batches.read_batch_file(path)


def test_describe_reports_the_header_the_sections_and_both_checks():
    built = cut(MIXED)
    signed = sign_header(built.header, SIGNING_KEY)
    report = batches.describe(signed, built.body, TRUSTED)
    assert report["ok"] and report["signature_ok"] and report["body_ok"]
    header = report["header"]
    assert header["sequence"] == 1 and header["salt"] == bytes(range(16)).hex() and header["format_version"] == 2
    assert header["published_at_utc"] == "2020-04-05T00:00:00+00:00"
    assert header["error_rate"] == pytest.approx(ERROR_RATE, rel=1e-6)
    assert header["log2_inv_eps"] == pytest.approx(math.log2(1 / ERROR_RATE), abs=1e-3)
    assert header["sections"][1]["error_rate"] == pytest.approx(ERROR_RATE * math.sqrt(37 / 757), rel=1e-6)
    summary = [(s["report_types"], s["infectiousness"], s["count"]) for s in header["sections"]]
    assert summary == [
        (["CONFIRMED_TEST", "CONFIRMED_CLINICAL_DIAGNOSIS"], ["STANDARD", "HIGH"], 720),
        (["SELF_REPORT"], ["STANDARD", "HIGH"], 37),
    ]
    total = (len(signed.SerializeToString()) + len(built.body)) * 8 / 757
    assert header["bits_per_element"] == pytest.approx(total, abs=1e-3)


def test_describe_shows_a_tampered_batch_as_not_ok_and_says_why():
    built = cut(MIXED)
    signed = sign_header(built.header, SIGNING_KEY)
    report = batches.describe(signed, flipped(built.body, 8 * 100), TRUSTED)
    assert report["signature_ok"] and not report["body_ok"] and not report["ok"]
    assert "SHA-256" in report["body_error"]
    report = batches.describe(signed, built.body, TrustedKeys([generate_signing_key().verifying_key()]))
    assert not report["signature_ok"] and not report["ok"] and "pinned" in report["signature_error"]
    assert report["header"]["sequence"] == 1  # still shown, for the person inspecting it


def test_a_key_pruned_to_its_contact_intervals_publishes_those_and_no_other():
    bitmap = (0b1110 << 40).to_bytes(18, "little")  # intervals 41, 42 and 43 of the key's day
    pruned = DiagnosisKey(key(1).key_data, DAY, 144, ReportType.CONFIRMED_TEST, contact_intervals=bitmap)
    built = cut(
        [
            pruned,
            key(2),
            DiagnosisKey(key(3).key_data, DAY, 144, ReportType.CONFIRMED_TEST, contact_intervals=bytes(18)),
        ]
    )  # no contact at all: nothing
    assert (built.keys_published, built.elements) == (2, 3 + 144)
    header, sections = opened(built)
    found = match(header, sections, *observations(pruned))
    assert np.flatnonzero(found.section >= 0).tolist() == [41, 42, 43]
