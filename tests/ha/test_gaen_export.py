"""GAEN export files: the published samples parse and verify; damaged or foreign files are refused."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from clients.ha.gaen_export import (
    EXPORT_HEADER,
    GaenExport,
    build_export,
    parse_export_bin,
    read_export,
    verify_export,
    write_export_zip,
)
from clients.ha.source_keys import KeyFileError, SourceKey
from exposure.gaen import export_pb2
from matcher.model import ReportType
from matcher.signing import SignatureError, generate_signing_key, load_verifying_key
from tests.ha.conftest import ENS_PEM, ENS_ZIP, INTERNALS_PEM, INTERNALS_ZIP

SAMPLES = [(INTERNALS_ZIP, INTERNALS_PEM), (ENS_ZIP, ENS_PEM)]


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def flip_bit(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def test_the_internals_sample_holds_140_keys_each_valid_for_a_whole_day():
    export = read_export(INTERNALS_ZIP)
    keys = export.source_keys()
    assert len(keys) == 140
    assert {key.rolling_period for key in keys} == {144}  # absent in the file: proto2's default
    assert {key.report_type for key in keys} == {None}  # the file gives none; --report-type fills it in
    assert {key.rolling_start % 144 for key in keys} == {0}
    assert len({key.key_data for key in keys}) == 140
    assert export.contents.region == "US"


def test_the_ens_example_holds_2_keys_valid_for_1_and_114_intervals():
    keys = read_export(ENS_ZIP).source_keys()
    assert [(key.rolling_start, key.rolling_period) for key in keys] == [(2649980, 1), (2649866, 114)]
    assert keys[0].key_data.hex() == "172fc480e598490c34177604339b1543"
    # Neither start is aligned to midnight: real keys are rolled at any time.
    assert [key.rolling_start % 144 for key in keys] == [92, 122]


@pytest.mark.parametrize(("export_file", "pem"), SAMPLES, ids=["internals", "ens"])
def test_each_sample_verifies_with_its_published_public_key(export_file, pem):
    signature = verify_export(read_export(export_file), load_verifying_key(pem))
    assert signature.signature_info.signature_algorithm == "1.2.840.10045.4.3.2"


@pytest.mark.parametrize(("export_file", "pem"), [(INTERNALS_ZIP, ENS_PEM), (ENS_ZIP, INTERNALS_PEM)])
def test_a_sample_does_not_verify_with_the_other_sample_key(export_file, pem):
    with pytest.raises(SignatureError, match="does not verify with the given public key"):
        verify_export(read_export(export_file), load_verifying_key(pem))


@pytest.mark.parametrize(("export_file", "pem"), SAMPLES, ids=["internals", "ens"])
def test_a_flipped_bit_in_export_bin_breaks_the_signature(tmp_path, export_file, pem):
    files = members(export_file)
    files["export.bin"] = flip_bit(files["export.bin"], len(files["export.bin"]) - 3)  # inside the last key
    damaged = read_export(write_zip(tmp_path / "damaged.zip", files))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_export(damaged, load_verifying_key(pem))


@pytest.mark.parametrize(("export_file", "pem"), SAMPLES, ids=["internals", "ens"])
def test_a_flipped_bit_in_the_signature_is_refused(tmp_path, export_file, pem):
    files = members(export_file)
    signatures = export_pb2.TEKSignatureList.FromString(files["export.sig"])
    signature = signatures.signatures[0].signature
    position = files["export.sig"].index(signature) + len(signature) - 5  # inside the DER integer s
    files["export.sig"] = flip_bit(files["export.sig"], position)
    damaged = read_export(write_zip(tmp_path / "damaged.zip", files))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_export(damaged, load_verifying_key(pem))


def test_a_bare_export_bin_parses_but_has_no_signature_to_verify(tmp_path):
    bare = tmp_path / "export.bin"
    bare.write_bytes(members(ENS_ZIP)["export.bin"])
    export = read_export(bare)
    assert len(export.source_keys()) == 2
    with pytest.raises(SignatureError, match=r"no export.sig to verify"):
        verify_export(export, load_verifying_key(ENS_PEM))


def test_a_zip_without_a_signature_reads_but_cannot_be_verified(tmp_path):
    unsigned = write_zip(tmp_path / "unsigned.zip", {"export.bin": members(ENS_ZIP)["export.bin"]})
    with pytest.raises(SignatureError, match=r"no export.sig to verify"):
        verify_export(read_export(unsigned), load_verifying_key(ENS_PEM))


def test_an_empty_signature_list_is_refused(tmp_path):
    files = members(ENS_ZIP) | {"export.sig": b""}
    with pytest.raises(SignatureError, match="holds no signature"):
        verify_export(read_export(write_zip(tmp_path / "x.zip", files)), load_verifying_key(ENS_PEM))


def test_a_wrong_header_is_refused(tmp_path):
    files = members(ENS_ZIP)
    files["export.bin"] = b"EK Export v2    " + files["export.bin"][16:]
    with pytest.raises(KeyFileError, match="not the GAEN export header") as refused:
        read_export(write_zip(tmp_path / "v2.zip", files))
    assert "\n" not in str(refused.value)


def test_a_truncated_export_is_refused():
    data = members(INTERNALS_ZIP)["export.bin"]
    with pytest.raises(KeyFileError, match="not a valid protobuf"):
        parse_export_bin(data[:-1])


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x3a\x50abc", b"\x0f"], ids=["varint", "short", "wire"])
def test_garbage_after_the_header_is_refused(garbage):
    with pytest.raises(KeyFileError, match="not a valid protobuf"):
        parse_export_bin(EXPORT_HEADER + garbage)


def test_a_zip_without_export_bin_is_refused(tmp_path):
    archive = write_zip(tmp_path / "other.zip", {"keys.bin": b"EK Export v1    "})
    with pytest.raises(KeyFileError, match=r"the zip holds no export.bin \(it holds keys.bin\)"):
        read_export(archive)


def test_a_file_that_is_neither_a_zip_nor_an_export_is_refused(tmp_path):
    other = tmp_path / "keys.json"
    other.write_text("[]")
    with pytest.raises(KeyFileError, match=r"neither a GAEN export zip nor an export.bin"):
        read_export(other)


def test_unknown_deprecated_and_reserved_fields_are_skipped():
    # A key with the deprecated transmission_risk_level, a field from a later format (number 20) and a
    # SignatureInfo in the old layout with app_bundle_id and android_package (reserved 1 and 2).
    key = export_pb2.TemporaryExposureKey(
        key_data=bytes(range(16)), transmission_risk_level=6, rolling_start_interval_number=2650001,
        rolling_period=77, report_type=export_pb2.TemporaryExposureKey.CONFIRMED_CLINICAL_DIAGNOSIS,
        days_since_onset_of_symptoms=-3,
    ).SerializeToString() + length_delimited(20, b"from the future")  # fmt: skip
    old_info = length_delimited(1, b"gov.example.app") + length_delimited(2, b"gov.example.android")
    old_info += export_pb2.SignatureInfo(verification_key_id="310").SerializeToString()
    body = export_pb2.TemporaryExposureKeyExport(region="VN").SerializeToString()
    body += length_delimited(6, old_info) + length_delimited(7, key) + length_delimited(99, b"unknown")
    contents = parse_export_bin(EXPORT_HEADER + body)
    assert contents.signature_infos[0].verification_key_id == "310"
    [read] = GaenExport("x", EXPORT_HEADER + body, None, contents).source_keys()
    assert read == SourceKey("keys[0]", bytes(range(16)), 2650001, 77, ReportType.CONFIRMED_CLINICAL_DIAGNOSIS, -3)


def test_a_negative_start_is_refused_in_one_line():
    body = export_pb2.TemporaryExposureKeyExport(
        keys=[export_pb2.TemporaryExposureKey(key_data=bytes(16), rolling_start_interval_number=-5)]
    ).SerializeToString()
    export = GaenExport("export.bin", EXPORT_HEADER + body, None, parse_export_bin(EXPORT_HEADER + body))
    with pytest.raises(KeyFileError, match=r"^export.bin: keys\[0\]: rolling_start_interval_number is negative"):
        export.source_keys()


def test_an_export_written_back_reads_as_the_same_keys_and_verifies(tmp_path):
    keys = [
        SourceKey("a", bytes.fromhex("00" * 15 + "01"), 2650001, 77, ReportType.SELF_REPORT, 2),
        SourceKey("b", bytes.fromhex("ff" * 16), 2650032, 144, None, None),
    ]
    signing_key = generate_signing_key()
    export_bin, export_sig = build_export(
        keys, signing_key, region="VN", start_timestamp=1590000000, end_timestamp=1590086400, key_id="310"
    )
    write_export_zip(tmp_path / "out.zip", export_bin, export_sig)
    export = read_export(tmp_path / "out.zip")
    assert [(k.key_data, k.rolling_start, k.rolling_period, k.report_type, k.days_since_onset)
            for k in export.source_keys()] == [
        (k.key_data, k.rolling_start, k.rolling_period, k.report_type, k.days_since_onset) for k in keys
    ]  # fmt: skip
    signature = verify_export(export, signing_key.verifying_key())
    assert signature.signature_info.verification_key_id == "310"
    with pytest.raises(SignatureError):
        verify_export(export, generate_signing_key().verifying_key())
