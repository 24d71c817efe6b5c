"""Batches as the publisher cuts them and as a phone opens them: risk classes, signatures, digests, matching."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from exposure.v1 import batch_pb2
from matcher import batches, crypto
from matcher.batches import BatchRejected, build_batch, match, open_body, open_header, sign_header
from matcher.exposure_config import default_config
from matcher.filters import FILE_HEADER
from matcher.model import DiagnosisKey, Infectiousness, ReportType
from matcher.signing import TrustedKeys, generate_signing_key

DAY = 2642976  # 2020-04-02
PUBLISHED_AT = (DAY + 3 * 144) * 600  # 2020-04-05 00:00 UTC
ERROR_RATE = 1e-9
SIGNING_KEY = generate_signing_key()
TRUSTED = TrustedKeys([SIGNING_KEY.verifying_key()])


def key(n: int, start: int = DAY, period: int = 144, report_type: ReportType = ReportType.CONFIRMED_TEST,
        days_since_onset: int | None = None, tx_power: int | None = None) -> DiagnosisKey:
    key_data = hashlib.sha256(b"key %d" % n).digest()[:16]
    return DiagnosisKey(key_data, start, period, report_type, days_since_onset, tx_power)


def cut(keys: list[DiagnosisKey], **overrides) -> batches.BuiltBatch:
    arguments = dict(sequence=1, published_at=PUBLISHED_AT, region="VN", config=default_config(),
                     signing_key=SIGNING_KEY, error_rate=ERROR_RATE, salt=bytes(range(16)))
    arguments.update(overrides)
    return build_batch(keys, **arguments)


def opened(built: batches.BuiltBatch) -> tuple[batch_pb2.BatchHeader, list[batches.LoadedFilter]]:
    return batches.open_batch(sign_header(built.header, SIGNING_KEY), built.body, TRUSTED)


def observations(k: DiagnosisKey, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """What a phone near this key's owner stores: each RPI with the interval it was heard in (plus shift)."""
    rpis = crypto.rpis(k.key_data, k.rolling_start, k.rolling_period)
    return rpis, np.arange(k.rolling_start, k.end_interval) + shift


# --- Building -------------------------------------------------------------------------------------------------

MIXED = [
    key(1, days_since_onset=0),  # HIGH
    key(2, DAY - 144, days_since_onset=5),  # STANDARD
    key(3, DAY + 144),  # no onset: STANDARD
    key(4, DAY, 37, ReportType.SELF_REPORT),  # a short key
    key(5, DAY - 288, days_since_onset=-10),  # NONE: not published
    key(6, DAY, report_type=ReportType.REVOKED),  # not a publishable report type
    key(7, DAY, tx_power=-12),  # TX power class -10 dBm
    key(8, DAY + 144, tx_power=-8),  # also -10 dBm
]
PUBLISHED = [MIXED[n] for n in (0, 1, 2, 3, 6, 7)]


def test_each_risk_class_with_keys_gets_one_filter_sized_for_exactly_its_elements():
    built = cut(MIXED)
    classes = [(batches.risk_class_of_info(f), f.capacity, f.count) for f in built.header.filters]
    assert classes == [
        ((ReportType.CONFIRMED_TEST, Infectiousness.STANDARD, None), 288, 288),
        ((ReportType.CONFIRMED_TEST, Infectiousness.STANDARD, -10), 288, 288),
        ((ReportType.CONFIRMED_TEST, Infectiousness.HIGH, None), 144, 144),
        ((ReportType.SELF_REPORT, Infectiousness.STANDARD, None), 37, 37),
    ]
    assert (built.keys_published, built.elements) == (6, 757)


def test_a_batch_can_carry_84_risk_classes_in_a_fixed_order():
    assert len(batches.RISK_CLASSES) == 3 * 2 * 14
    assert batches.TX_POWER_CLASSES == (None, *range(-40, 21, 5))
    assert list(batches.RISK_CLASSES) == sorted(batches.RISK_CLASSES, key=batches.header_order)


def test_the_header_describes_the_body_and_names_its_signing_key():
    built = cut(MIXED)
    header = built.header
    assert (header.sequence, header.published_at, header.region) == (1, PUBLISHED_AT, "VN")
    assert (header.first_interval, header.last_interval) == (DAY - 144, DAY + 2 * 144 - 1)
    assert header.salt == bytes(range(16)) and header.body_size == len(built.body)
    assert (header.signing_key_id, header.signing_key_version) == (SIGNING_KEY.key_id, SIGNING_KEY.version)
    offset = 0
    for info in header.filters:
        image = built.body[info.offset : info.offset + info.length]
        assert info.offset == offset and hashlib.sha256(image).digest() == info.sha256
        assert FILE_HEADER.unpack_from(image) == (
            info.error_rate, info.num_slices, info.bits_per_slice, info.capacity, info.count
        )
        offset += info.length
    assert offset == len(built.body)


def test_a_batch_without_publishable_keys_has_no_filters_and_an_empty_body():
    built = cut([key(5, days_since_onset=-10), key(6, report_type=ReportType.REVOKED)])
    assert (list(built.header.filters), built.body, built.keys_published, built.elements) == ([], b"", 0, 0)
    header, filters = opened(built)
    rpis, intervals = observations(key(5))
    assert filters == [] and (match(header, filters, rpis, intervals) == -1).all()


def test_a_key_given_twice_is_published_once():
    built = cut([key(1), key(1), key(2)])
    assert (built.keys_published, built.elements, built.header.filters[0].count) == (2, 288, 288)


def test_every_batch_gets_a_fresh_salt_unless_one_is_given():
    first, second = cut([key(1)], salt=None), cut([key(1)], salt=None)
    assert len(first.header.salt) == 16 and first.header.salt != second.header.salt
    assert first.body != second.body
    with pytest.raises(ValueError, match="16 bytes"):
        cut([key(1)], salt=b"short")


def test_groups_of_keys_give_the_same_tags_as_one_key_at_a_time(monkeypatch):
    keys = [key(n, DAY + n, 144 - n) for n in range(10)]
    whole = batches.class_tags(keys, bytes(16))
    monkeypatch.setattr(batches, "_ELEMENTS_PER_GROUP", 200)
    assert np.array_equal(batches.class_tags(keys, bytes(16)), whole)
    rpis, intervals = batches.key_elements(keys)
    assert np.array_equal(rpis[144:287], crypto.rpis(keys[1].key_data, DAY + 1, 143))
    assert intervals[144:287].tolist() == list(range(DAY + 1, DAY + 144))


# --- Matching -------------------------------------------------------------------------------------------------


def test_every_identifier_of_every_published_key_matches_in_its_own_risk_class():
    header, filters = opened(cut(MIXED))
    for k in PUBLISHED:
        found = match(header, filters, *observations(k))
        assert len(set(found.tolist())) == 1 and found[0] >= 0
        assert filters[found[0]].risk_class == batches.risk_class_of(k, default_config())


def test_keys_that_are_not_published_match_nothing():
    header, filters = opened(cut(MIXED))
    for k in MIXED[4:6]:
        assert (match(header, filters, *observations(k)) == -1).all()


def test_identifiers_of_intervals_outside_a_keys_validity_match_nothing():
    short = key(4, DAY + 50, 37, ReportType.SELF_REPORT)
    header, filters = opened(cut([short, key(1, DAY)]))
    outside = np.r_[np.arange(DAY, DAY + 50), np.arange(DAY + 87, DAY + 144)]
    rpis = crypto.rpis(short.key_data, DAY, 144)[outside - DAY]
    assert (match(header, filters, rpis, outside, tolerance=0) == -1).all()


def test_a_replayed_rpi_does_not_match_beyond_the_tolerance():
    k = key(1)
    header, filters = opened(cut([k]))
    rpis, intervals = observations(k)
    assert (match(header, filters, rpis, intervals + 1, tolerance=1) == 0).all()
    for shift in (2, -2, 5, 144, -144):
        assert (match(header, filters, rpis, intervals + shift, tolerance=1) == -1).all(), shift
    assert (match(header, filters, rpis, intervals + 1, tolerance=0) == -1).all()
    assert (match(header, filters, rpis, intervals + 3, tolerance=3) == 0).all()


def test_observations_made_at_or_after_publication_are_not_tested():
    k = key(1)
    header, filters = opened(cut([k]))
    rpis, intervals = observations(k)
    before = np.full(len(rpis), PUBLISHED_AT - 1)
    assert (match(header, filters, rpis, intervals, observed_at=before) == 0).all()
    assert (match(header, filters, rpis, intervals, observed_at=before + 1) == -1).all()


def test_only_observations_within_the_covered_range_widened_by_the_tolerance_are_tested():
    header = batch_pb2.BatchHeader(first_interval=100, last_interval=200, published_at=10**9,
                                   filters=[batch_pb2.FilterInfo()])
    intervals = np.array([98, 99, 100, 200, 201, 202])
    assert batches.eligible(header, intervals, tolerance=1).tolist() == [False, True, True, True, True, False]
    assert batches.eligible(header, intervals, tolerance=0).tolist() == [False, False, True, True, False, False]
    seen = np.array([0, 0, 10**9 - 1, 10**9, 0, 0])
    assert batches.eligible(header, intervals, seen, 1).tolist() == [False, True, True, False, True, False]


def test_an_observation_one_interval_outside_the_range_matches_its_neighbour_inside():
    k = key(1)
    header, filters = opened(cut([k]))
    rpis, intervals = observations(k)
    # heard one interval late (clock skew): the last RPI, noted at the interval after the range, still matches
    assert match(header, filters, rpis[-1:], intervals[-1:] + 1).tolist() == [0]
    assert match(header, filters, rpis[:1], intervals[:1] - 1).tolist() == [0]


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


def test_a_filter_whose_tofile_header_disagrees_with_its_signed_parameters_is_refused():
    built = cut([key(1)])
    header = batch_pb2.BatchHeader()
    header.CopyFrom(built.header)
    header.filters[0].capacity += 1
    with pytest.raises(BatchRejected, match="disagrees"):
        open_body(signed_with(header), built.body)


def test_a_body_whose_filters_are_not_laid_out_in_header_order_is_refused():
    built = cut(MIXED)
    header = batch_pb2.BatchHeader()
    header.CopyFrom(built.header)
    header.filters[0].offset, header.filters[1].offset = header.filters[1].offset, header.filters[0].offset
    with pytest.raises(BatchRejected, match="not the next ones"):
        open_body(signed_with(header), built.body)


def test_two_filters_for_one_risk_class_or_an_unpublished_class_are_refused():
    built = cut(MIXED)
    header = batch_pb2.BatchHeader()
    header.CopyFrom(built.header)
    header.filters[1].ClearField("tx_power_dbm")  # now the same class as filter 0
    with pytest.raises(BatchRejected, match="same risk class"):
        open_body(signed_with(header), built.body)
    for field, value in (("infectiousness", Infectiousness.NONE), ("tx_power_dbm", -12), ("tx_power_dbm", 25)):
        header.CopyFrom(built.header)
        setattr(header.filters[1], field, value)
        with pytest.raises(BatchRejected, match="not a published risk class"):
            open_body(signed_with(header), built.body)


# --- Files and inspection -------------------------------------------------------------------------------------


def test_a_batch_file_round_trips_and_starts_with_the_magic(tmp_path):
    built = cut(MIXED)
    signed = sign_header(built.header, SIGNING_KEY)
    path = tmp_path / "batch-1.bin"
    batches.write_batch_file(path, signed, built.body)
    data = path.read_bytes()
    envelope = signed.SerializeToString(deterministic=True)
    assert data == b"EXPOSURE BATCH 1" + len(envelope).to_bytes(4, "little") + envelope + built.body
    assert batches.read_batch_file(path) == (signed, built.body)
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "not a batch file"), (b"GAEN EXPORT FILE\0\0\0\0", "not a batch file"),
     (b"EXPOSURE BATCH 1" + (100).to_bytes(4, "little") + b"x", "truncated"),
     (b"EXPOSURE BATCH 1" + (1).to_bytes(4, "little") + b"\xff", "does not parse")],
)
def test_a_file_that_is_not_a_batch_is_refused_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(BatchRejected, match=reason):
        batches.read_batch_file(path)


def test_describe_reports_the_header_the_filters_and_both_checks():
    built = cut(MIXED)
    signed = sign_header(built.header, SIGNING_KEY)
    report = batches.describe(signed, built.body, TRUSTED)
    assert report["ok"] and report["signature_ok"] and report["body_ok"]
    assert report["header"]["sequence"] == 1 and report["header"]["salt"] == bytes(range(16)).hex()
    assert report["header"]["published_at_utc"] == "2020-04-05T00:00:00+00:00"
    filters = report["header"]["filters"]
    summary = [(f["report_type"], f["infectiousness"], f["tx_power_dbm"], f["count"], f["digest_ok"]) for f in filters]
    assert summary == [
        ("CONFIRMED_TEST", "STANDARD", None, 288, True), ("CONFIRMED_TEST", "STANDARD", -10, 288, True),
        ("CONFIRMED_TEST", "HIGH", None, 144, True), ("SELF_REPORT", "STANDARD", None, 37, True),
    ]


def test_describe_shows_a_tampered_batch_as_not_ok_and_says_why():
    built = cut(MIXED)
    signed = sign_header(built.header, SIGNING_KEY)
    report = batches.describe(signed, flipped(built.body, 8 * 100), TRUSTED)
    assert report["signature_ok"] and not report["body_ok"] and not report["ok"]
    assert "SHA-256" in report["body_error"] and not report["header"]["filters"][0]["digest_ok"]
    report = batches.describe(signed, built.body, TrustedKeys([generate_signing_key().verifying_key()]))
    assert not report["signature_ok"] and not report["ok"] and "pinned" in report["signature_error"]
    assert report["header"]["sequence"] == 1  # still shown, for the person inspecting it
