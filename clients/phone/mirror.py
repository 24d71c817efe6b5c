"""Syncing from a static mirror (`matcher mirror`) over HTTPS: the same verification as over gRPC.

What the phone sends here, and all it ever sends: GET requests for public files (the index, then the batch files
it lists), with a Range header when it resumes a cut download. No body, no cookie, no user agent, no query: only
the standard library's Host and Accept-Encoding headers besides. Every phone fetches the same files.

The checks (docs/spec.md section 14): the index's signature against the pinned key(s) and its age against the
index accepted before (an older index is a replay and is refused whole); then for each new batch file, its size
and SHA-256 as the index lists them before anything in it is parsed, then the batch's own verification (its
header's signature, its sequence, its body's digest and coding). A file that fails is refused, reported and
never used; a download cut by the network is kept and resumed with a Range request next time.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse

from exposure.v1 import mirror_pb2
from matcher.batches import BatchRejected
from matcher.mirror import INDEX_NAME, MirrorRejected, open_index, open_mirror_file
from matcher.signing import TrustedKeys

from .store import PhoneStore
from .sync import CALL_TIMEOUT, SyncReport, keep_config

_PARTIAL_TAG = b"mirror:"  # what the phone keeps of a cut file, next to the bytes: the name it came from


class MirrorError(Exception):
    """The mirror could not be reached, or answered with an HTTP error: nothing was accepted."""


class _Cut(Exception):
    """A file's download stopped before its end; what arrived is kept for resuming."""

    def __init__(self, status: int, received: bytes, why: str) -> None:
        super().__init__(why)
        self.status, self.received = status, received


class MirrorClient:
    """GETs over one keep-alive HTTPS connection to the mirror at ``url``, trusting ``context``'s CAs."""

    def __init__(self, url: str, context: ssl.SSLContext, timeout: float = CALL_TIMEOUT) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"{url!r}: a mirror is an https:// URL")
        self.host, self.port = parts.hostname, parts.port or 443
        self.base = parts.path.rstrip("/") + "/"
        self.context, self.timeout = context, timeout
        self._connection: http.client.HTTPSConnection | None = None

    def get(self, name: str, start: int = 0) -> tuple[int, int | None, bytes]:
        """GET ``name`` (from byte ``start`` with a Range request): (status, total size if known, bytes). A
        connection cut before the response's end raises _Cut with what arrived."""
        headers = {"Range": f"bytes={start}-"} if start else {}
        for attempt in (1, 2):  # a keep-alive connection the server closed meanwhile: once more, on a new one
            connection = self._connect()
            try:
                connection.request("GET", self.base + name, headers=headers)
                response = connection.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
        try:
            data = response.read()
        except http.client.IncompleteRead as cut:
            self.close()
            raise _Cut(response.status, cut.partial, f"the connection closed after {len(cut.partial)} bytes") from None
        except OSError as exc:
            self.close()
            raise _Cut(response.status, b"", str(exc)) from None
        total = None
        if response.status == 206:
            total = int(response.getheader("Content-Range", "*/0").rpartition("/")[2] or 0) or None
        return response.status, total, data

    def _connect(self) -> http.client.HTTPSConnection:
        if self._connection is None:
            self._connection = http.client.HTTPSConnection(
                self.host, self.port, context=self.context, timeout=self.timeout
            )
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Trusts ``ca_file`` (a development CA, `matcher certs`), or the system's CAs (a public CDN)."""
    return ssl.create_default_context(cafile=ca_file)


def sync_mirror(client: MirrorClient, store: PhoneStore, trusted: TrustedKeys) -> SyncReport:
    """Verifies the mirror's index, keeps its exposure configuration, and downloads, verifies and keeps every batch
    file after the phone's cursor. Raises MirrorError if the index cannot be fetched."""
    report = SyncReport()
    try:
        status, _, data = client.get(INDEX_NAME)
    except (_Cut, OSError, http.client.HTTPException) as exc:
        raise MirrorError(f"the mirror's index could not be fetched: {exc}") from None
    if status != 200:
        raise MirrorError(f"the mirror answered HTTP {status} for its index")
    report.bytes_downloaded += len(data)
    try:
        index = open_index(
            data,
            trusted,
            held_written_at=store.get_int("mirror_written_at"),
            held_newest=store.get_int("mirror_newest"),
        )
    except MirrorRejected as exc:
        report.refused.append((0, str(exc)))
        return report
    # Accepted: from now on an index written before this one is a replay.
    store.put("mirror_written_at", str(index.written_at).encode())
    store.put("mirror_newest", str(index.newest_sequence).encode())
    if index.HasField("exposure_config"):
        keep_config(index.exposure_config, store, trusted, report)

    for entry in index.files:
        if entry.sequence <= store.cursor():
            continue
        try:
            data = _download(client, store, entry, report)
        except _Cut as cut:
            report.interrupted = f"batch {entry.sequence} download stopped ({cut}); the next sync resumes it"
            break
        except MirrorError as exc:
            report.interrupted = str(exc)
            break
        try:
            signed, header, body = open_mirror_file(entry, data, trusted)
        except BatchRejected as exc:
            store.refuse_batch(entry.sequence)
            report.refused.append((entry.sequence, f"batch {entry.sequence} refused: {exc}"))
            continue
        store.keep_batch(header.sequence, signed.SerializeToString(), header.published_at, body)
        report.new_batches.append(header.sequence)
    store.add_int("bytes_downloaded", report.bytes_downloaded)
    return report


def _download(client: MirrorClient, store: PhoneStore, entry: mirror_pb2.MirrorFile, report: SyncReport) -> bytes:
    """The file's bytes, resuming what an earlier sync kept of the same file."""
    tag = _PARTIAL_TAG + entry.name.encode()
    partial = store.partial_download(entry.sequence)
    held = partial[1] if partial and partial[0] == tag and len(partial[1]) < entry.size else b""
    try:
        status, _, data = client.get(entry.name, start=len(held))
    except _Cut as cut:
        # A 206 continues what was held; a 200 (a server that ignores Range) started the file again.
        store.save_partial(entry.sequence, tag, held + cut.received if cut.status == 206 else cut.received)
        report.bytes_downloaded += len(cut.received)
        raise
    except (OSError, http.client.HTTPException) as exc:
        raise MirrorError(f"batch {entry.sequence} could not be fetched: {exc}") from None
    report.bytes_downloaded += len(data)
    if status == 206 and held:
        return held + data
    if status == 200:
        return data  # the whole file (a server that ignores Range sends it all again)
    if status == 416:
        return held  # nothing past what was held: the file is no longer than that
    raise MirrorError(f"the mirror answered HTTP {status} for batch {entry.sequence}")
