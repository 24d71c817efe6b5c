"""GAEN key export files: ``export.bin`` (a 16-byte header, then a TemporaryExposureKeyExport protobuf) and
``export.sig`` (a TEKSignatureList whose DER ECDSA P-256 / SHA-256 signature covers the whole export.bin,
header included), alone or together in a ``.zip``.

Files in the wild differ from the published export.proto: starts not aligned to midnight, deprecated and
reserved fields, older SignatureInfo layouts, and sometimes no export.sig. Protobuf keeps fields it does not
know as unknown fields and this module never looks at them; ``transmission_risk_level`` is read and ignored.
A file that is not an export at all (wrong header, a protobuf that does not parse, a zip without export.bin)
is refused with one line.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from exposure.gaen import export_pb2
from matcher.model import ReportType
from matcher.signing import SIGNATURE_ALGORITHM_OID, SignatureError, SigningKey, VerifyingKey

from .source_keys import SINT32_MAX, KeyFileError, SourceKey

EXPORT_HEADER = b"EK Export v1    "
EXPORT_BIN = "export.bin"
EXPORT_SIG = "export.sig"
# Real exports are at most a few hundred kilobytes (GAEN caps a file at 750,000 keys); anything far larger is
# not an export, and reading it whole would only exhaust memory.
MAX_EXPORT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class GaenExport:
    """An export file as read: the exact bytes (what a signature covers) and the parsed contents."""

    name: str
    export_bin: bytes
    export_sig: bytes | None
    contents: export_pb2.TemporaryExposureKeyExport

    def source_keys(self) -> list[SourceKey]:
        """The file's keys. ``revised_keys`` are left out: they revise keys of earlier files, which a filter
        batch, once published, cannot change."""
        return [_source_key(key, f"keys[{index}]", self.name) for index, key in enumerate(self.contents.keys)]


def read_export(path: Path) -> GaenExport:
    """A GAEN export from a ``.zip`` (export.bin and, usually, export.sig) or a bare export.bin.

    The format is told from the content, not the file name. Raises KeyFileError with one line for anything that
    is not an export.
    """
    path = Path(path)
    if path.stat().st_size > MAX_EXPORT_BYTES:
        raise KeyFileError(f"{path}: {path.stat().st_size} bytes is too large for a GAEN export")
    data = path.read_bytes()
    if data.startswith(EXPORT_HEADER):
        return GaenExport(str(path), data, None, parse_export_bin(data, str(path)))
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise KeyFileError(
            f"{path}: neither a GAEN export zip nor an export.bin (an export.bin starts with {EXPORT_HEADER!r})"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            export_bin = _member(archive, EXPORT_BIN, path)
            if export_bin is None:
                raise KeyFileError(f"{path}: the zip holds no {EXPORT_BIN} (it holds {', '.join(archive.namelist())})")
            export_sig = _member(archive, EXPORT_SIG, path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise KeyFileError(f"{path}: a damaged zip: {exc}") from None
    return GaenExport(
        f"{path}:{EXPORT_BIN}", export_bin, export_sig, parse_export_bin(export_bin, f"{path}:{EXPORT_BIN}")
    )


def parse_export_bin(data: bytes, name: str = EXPORT_BIN) -> export_pb2.TemporaryExposureKeyExport:
    """The TemporaryExposureKeyExport after the 16-byte header."""
    header = data[: len(EXPORT_HEADER)]
    if header != EXPORT_HEADER:
        raise KeyFileError(f"{name}: the header is {header!r}, not the GAEN export header {EXPORT_HEADER!r}")
    contents = export_pb2.TemporaryExposureKeyExport()
    try:
        contents.ParseFromString(data[len(EXPORT_HEADER) :])
    except DecodeError:
        raise KeyFileError(
            f"{name}: the export after the header is not a valid protobuf (truncated or damaged)"
        ) from None
    return contents


def verify_export(export: GaenExport, key: VerifyingKey) -> export_pb2.TEKSignature:
    """The signature in export.sig that verifies export.bin with ``key``; raises SignatureError if there is none.

    A signature list may carry signatures by several keys (one per app or key version), so any one of them
    that verifies with ``key`` will do; signatures with another algorithm are skipped.
    """
    if export.export_sig is None:
        raise SignatureError(f"{export.name}: no {EXPORT_SIG} to verify")
    signatures = export_pb2.TEKSignatureList()
    try:
        signatures.ParseFromString(export.export_sig)
    except DecodeError:
        raise SignatureError(f"{export.name}: {EXPORT_SIG} is not a valid TEKSignatureList") from None
    if not signatures.signatures:
        raise SignatureError(f"{export.name}: {EXPORT_SIG} holds no signature")
    for signature in signatures.signatures:
        algorithm = signature.signature_info.signature_algorithm
        if algorithm and algorithm != SIGNATURE_ALGORITHM_OID:
            continue
        try:
            key.verify(b"", export.export_bin, signature.signature)
        except SignatureError:
            continue
        return signature
    raise SignatureError(f"{export.name}: {EXPORT_SIG} does not verify with the given public key")


def build_export(
    keys: Sequence[SourceKey],
    signing_key: SigningKey,
    *,
    region: str,
    start_timestamp: int,
    end_timestamp: int,
    key_id: str | None = None,
    key_version: str | None = None,
) -> tuple[bytes, bytes]:
    """export.bin and export.sig for ``keys``, one file of a batch of one, signed with ``signing_key``.

    Keys without a report type are written without one, as GAEN files usually are.
    """
    info = export_pb2.SignatureInfo(
        verification_key_version=key_version or signing_key.version,
        verification_key_id=key_id or signing_key.key_id,
        signature_algorithm=SIGNATURE_ALGORITHM_OID,
    )
    contents = export_pb2.TemporaryExposureKeyExport(
        start_timestamp=start_timestamp,
        end_timestamp=end_timestamp,
        region=region,
        batch_num=1,
        batch_size=1,
        signature_infos=[info],
        keys=[_gaen_key(key) for key in keys],
    )
    export_bin = EXPORT_HEADER + contents.SerializeToString()
    signature = export_pb2.TEKSignature(
        signature_info=info, batch_num=1, batch_size=1, signature=signing_key.sign(b"", export_bin)
    )
    return export_bin, export_pb2.TEKSignatureList(signatures=[signature]).SerializeToString()


def write_export_zip(path: Path, export_bin: bytes, export_sig: bytes) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(EXPORT_BIN, export_bin)
        archive.writestr(EXPORT_SIG, export_sig)


def _member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes | None:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > MAX_EXPORT_BYTES:
        raise KeyFileError(f"{path}: {name} is {info.file_size} bytes, too large for a GAEN export")
    return archive.read(info)


def _source_key(key: export_pb2.TemporaryExposureKey, origin: str, name: str) -> SourceKey:
    # int32 fields in GAEN, uint32 in the API: a negative value is not a key at all.
    for field in ("rolling_start_interval_number", "rolling_period"):
        if getattr(key, field) < 0:
            raise KeyFileError(f"{name}: {origin}: {field} is negative ({getattr(key, field)})")
    # UNKNOWN (0) means the file does not say; --report-type fills it in. The other numbers are the API's.
    report_type = ReportType(key.report_type) if key.report_type else None
    return SourceKey(
        origin=origin,
        key_data=bytes(key.key_data),
        rolling_start=key.rolling_start_interval_number,
        # proto2 default: an absent rolling_period reads as 144.
        rolling_period=key.rolling_period,
        report_type=report_type,
        days_since_onset=key.days_since_onset_of_symptoms if key.HasField("days_since_onset_of_symptoms") else None,
    )


def _gaen_key(key: SourceKey) -> export_pb2.TemporaryExposureKey:
    if key.rolling_start > SINT32_MAX or key.rolling_period > SINT32_MAX:
        raise ValueError(f"{key.origin}: does not fit GAEN's int32 fields")
    gaen = export_pb2.TemporaryExposureKey(
        key_data=key.key_data,
        rolling_start_interval_number=key.rolling_start,
        rolling_period=key.rolling_period,
    )
    if key.report_type is not None:
        gaen.report_type = export_pb2.TemporaryExposureKey.ReportType.ValueType(key.report_type)
    if key.days_since_onset is not None:
        gaen.days_since_onset_of_symptoms = key.days_since_onset
    return gaen
