"""Downloading what the service publishes: new batches (incrementally, resumably) and the exposure configuration.

What a phone sends, and all it ever sends here: the sequence number it has reached, a batch number with a byte
offset, and an empty configuration request. Nothing about what it observed leaves the phone; the test suite
records every request of a sync and checks exactly that.

Every batch is verified before use: the header's signature against the pinned key(s), its sequence against the
cursor (a replayed older batch is refused), and each filter's SHA-256. A batch that fails is refused, reported,
and never used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from exposure.v1 import batch_pb2, config_pb2, distribution_pb2, distribution_pb2_grpc
from matcher.batches import BatchRejected, open_body, open_header
from matcher.envelope import Rejected
from matcher.exposure_config import open_config
from matcher.signing import TrustedKeys

from .store import PhoneStore

CALL_TIMEOUT = 60.0  # seconds per call: a phone on a slow network must not hang forever
PAGE_SIZE = 100
# Pages a sync asks for at most: 10,000 headers, weeks of hourly batches in many regions. A broken or hostile server
# answering "more" for ever cannot keep a phone's radio on; an honest long history is continued by the next sync.
MAX_PAGES_PER_SYNC = 100


@dataclass
class SyncReport:
    new_batches: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    bytes_downloaded: int = 0
    config_version: int | None = None
    interrupted: str | None = None  # why a download stopped early; the next sync resumes it


class DownloadCut(Exception):
    """A batch download stopped before its end; what arrived is kept for resuming."""


def sync(channel: grpc.Channel, store: PhoneStore, trusted: TrustedKeys, *, chunk_size: int = 0) -> SyncReport:
    stub = distribution_pb2_grpc.DistributionStub(channel)
    report = SyncReport()
    _sync_config(stub, store, trusted, report)
    after = store.cursor()
    for _ in range(MAX_PAGES_PER_SYNC):
        listing = stub.ListBatches(
            distribution_pb2.ListBatchesRequest(after_sequence=after, page_size=PAGE_SIZE), timeout=CALL_TIMEOUT
        )
        report.bytes_downloaded += listing.ByteSize()
        page_after = after
        for signed in listing.batches:
            sequence = _fetch_one(stub, store, trusted, signed, after, report, chunk_size)
            if sequence is None:
                return report  # cut download: stop here, resume next time
            after = max(after, sequence)
        if not listing.more or not listing.batches:
            break
        if after == page_after:  # "more" again, and nothing newer: asking again would get the same page forever
            report.interrupted = f"the server says more batches follow batch {after} but listed none newer: stopped"
            break
    else:
        report.interrupted = f"stopped after {MAX_PAGES_PER_SYNC} pages of batches: the next sync continues"
    store.add_int("bytes_downloaded", report.bytes_downloaded)
    return report


def _sync_config(
    stub: distribution_pb2_grpc.DistributionStub, store: PhoneStore, trusted: TrustedKeys, report: SyncReport
) -> None:
    signed = stub.GetExposureConfig(distribution_pb2.GetExposureConfigRequest(), timeout=CALL_TIMEOUT)
    report.bytes_downloaded += signed.ByteSize()
    keep_config(signed, store, trusted, report)


def keep_config(
    signed: config_pb2.SignedExposureConfig, store: PhoneStore, trusted: TrustedKeys, report: SyncReport
) -> None:
    """Keeps a signed exposure configuration once it verifies, unless the phone holds a newer version."""
    try:
        config = open_config(signed, trusted)
    except Rejected as exc:
        report.refused.append((0, str(exc)))
        return
    held = store.get("config_version")
    if held is None or config.version >= int(held):
        store.put("config", signed.SerializeToString())
        store.put("config_version", str(config.version).encode())
    report.config_version = config.version


def _fetch_one(
    stub: distribution_pb2_grpc.DistributionStub,
    store: PhoneStore,
    trusted: TrustedKeys,
    signed: batch_pb2.SignedBatchHeader,
    after: int,
    report: SyncReport,
    chunk_size: int,
) -> int | None:
    """Verifies, downloads and keeps one batch; returns its sequence (None when the download was cut)."""
    try:
        header = open_header(signed, trusted)
    except Rejected as exc:
        report.refused.append((0, f"batch refused: {exc}"))
        return after
    if header.sequence <= after:
        report.refused.append(
            (header.sequence, f"batch {header.sequence} refused: not newer than batch {after} already held (a replay)")
        )
        return after
    signed_bytes = signed.SerializeToString()
    try:
        body = _download(stub, store, header, signed_bytes, report, chunk_size)
        open_body(header, body)
    except DownloadCut as exc:
        report.interrupted = str(exc)
        return None
    except Rejected as exc:
        store.refuse_batch(header.sequence)
        report.refused.append((header.sequence, f"batch {header.sequence} refused: {exc}"))
        return header.sequence
    store.keep_batch(header.sequence, signed_bytes, header.published_at, body)
    report.new_batches.append(header.sequence)
    return header.sequence


def _download(
    stub: distribution_pb2_grpc.DistributionStub,
    store: PhoneStore,
    header: batch_pb2.BatchHeader,
    signed_bytes: bytes,
    report: SyncReport,
    chunk_size: int,
) -> bytes:
    partial = store.partial_download(header.sequence)
    body = bytearray(partial[1] if partial and partial[0] == signed_bytes else b"")
    if len(body) >= header.body_size:
        return bytes(body[: header.body_size])
    request = distribution_pb2.DownloadBatchRequest(sequence=header.sequence, offset=len(body), chunk_size=chunk_size)
    try:
        for chunk in stub.DownloadBatch(request, timeout=CALL_TIMEOUT):
            if chunk.offset != len(body):
                raise DownloadCut(f"batch {header.sequence}: chunk at offset {chunk.offset}, expected {len(body)}")
            body += chunk.data
            report.bytes_downloaded += len(chunk.data)
            if len(body) > header.body_size:
                break  # longer than signed: open_body refuses it
    except grpc.RpcError as exc:
        store.save_partial(header.sequence, signed_bytes, bytes(body))
        raise DownloadCut(
            f"batch {header.sequence} download stopped at {len(body)} of {header.body_size} bytes ({exc.code().name}); "
            "the next sync resumes it"
        ) from exc
    if len(body) < header.body_size:
        # The stream ended cleanly but short: the server sent less than it signed for. Not a network cut.
        raise BatchRejected(f"the download is truncated: {len(body)} of {header.body_size} bytes")
    return bytes(body)
