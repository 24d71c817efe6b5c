"""The static mirror: a tree of immutable batch files and a signed index, for any HTTPS server, CDN or bucket.

    DIR/index.bin                       a SignedMirrorIndex (rewritten when batches are published or expire)
    DIR/batches/<sequence>-<sha16>.bin  one batch file a batch (docs/spec.md section 11), never rewritten

Every phone downloads every batch, so distribution is where the load is; immutable files are what CDNs and object
stores serve best (GAEN's key server writes its export files to a bucket for the same reason). A file's name
carries the first 16 hex digits of its SHA-256, so a name is never reused for other bytes (not even after a store
was restored and sequences repeated) and can be cached for ever; only index.bin changes.

docs/spec.md section 14 says what a phone checks; ``open_index`` and ``open_mirror_file`` are those checks, and
clients/phone/mirror.py the phone that uses them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from exposure.v1 import batch_pb2, config_pb2, mirror_pb2

from .batches import BatchRejected, batch_file_bytes, open_body, open_header, parse_batch_file
from .envelope import MIRROR_INDEX, Rejected, open_envelope, seal
from .signing import SigningKey, TrustedKeys
from .store import Store

log = logging.getLogger(__name__)

INDEX_NAME = "index.bin"
BATCH_FOLDER = "batches"
_PAGE = 1000


class MirrorRejected(Rejected):
    """An index or a file of a mirror that must not be used; the message says why, for a person."""


@dataclass(frozen=True)
class MirrorRun:
    """What one writing of the tree did."""

    written: bool  # the index was rewritten (the listing changed)
    files: int  # batch files the index lists
    added: list[int]  # sequences of the batch files written this time
    removed: list[str]  # names of the files deleted (expired)
    newest_sequence: int


def file_name(sequence: int, data: bytes) -> str:
    return f"{BATCH_FOLDER}/{sequence}-{hashlib.sha256(data).hexdigest()[:16]}.bin"


def sign_index(index: mirror_pb2.MirrorIndex, signing_key: SigningKey) -> mirror_pb2.SignedMirrorIndex:
    index.signing_key_id, index.signing_key_version = signing_key.key_id, signing_key.version
    return seal(MIRROR_INDEX, index, signing_key)


def _read_index(folder: Path) -> mirror_pb2.MirrorIndex | None:
    """The index this tree holds now (our own file: parsed, not verified), or None."""
    try:
        signed = mirror_pb2.SignedMirrorIndex.FromString((folder / INDEX_NAME).read_bytes())
        return mirror_pb2.MirrorIndex.FromString(signed.index)
    except (OSError, DecodeError):
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.chmod(0o644)  # served by a web server's own user
    os.replace(partial, path)


def write_mirror(store: Store, signing_key: SigningKey, folder: Path, *, now: int, retention_seconds: int) -> MirrorRun:
    """Brings the tree in ``folder`` up to date with the store: a file for each retained batch published within
    the retention window, then the index listing them, signed. Files the index no longer lists are deleted once
    the index before this one did not list them either, so that a phone (or a CDN) holding the previous index
    still finds its files. The index is rewritten only when its listing or configuration changed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / BATCH_FOLDER).mkdir(exist_ok=True)
    for path in (folder, folder / BATCH_FOLDER):
        path.chmod(0o755)
    previous = _read_index(folder)
    known = {f.sequence: f for f in previous.files} if previous else {}

    files: list[mirror_pb2.MirrorFile] = []
    added: list[int] = []
    after = 0
    while page := store.list_batches(after=after, limit=_PAGE):
        for stored in page:
            after = stored.sequence
            if stored.published_at <= now - retention_seconds:
                continue  # past retention: the store purges it at its next run
            entry = known.get(stored.sequence)
            if entry is None or not (folder / entry.name).is_file():
                body = store.read_body(stored.sequence, 0, stored.body_size) if stored.body_size else b""
                data = batch_file_bytes(batch_pb2.SignedBatchHeader.FromString(stored.signed_header), body)
                entry = mirror_pb2.MirrorFile(
                    sequence=stored.sequence,
                    name=file_name(stored.sequence, data),
                    size=len(data),
                    sha256=hashlib.sha256(data).digest(),
                )
                _write_atomically(folder / entry.name, data)
                added.append(stored.sequence)
            files.append(entry)

    config = store.get_exposure_config()
    newest = store.last_sequence()
    index = mirror_pb2.MirrorIndex(newest_sequence=newest, written_at=now, files=files)
    if config is not None:
        index.exposure_config.CopyFrom(config_pb2.SignedExposureConfig.FromString(config))
    unchanged = previous is not None and (
        list(previous.files) == files
        and previous.newest_sequence == newest
        and previous.exposure_config.SerializeToString(deterministic=True)
        == index.exposure_config.SerializeToString(deterministic=True)
    )
    if not unchanged:
        _write_atomically(folder / INDEX_NAME, sign_index(index, signing_key).SerializeToString())

    # Only after the new index is in place: what neither it nor the one before lists.
    keep = {f.name for f in files} | {f.name for f in (previous.files if previous else [])}
    removed = []
    for path in sorted((folder / BATCH_FOLDER).iterdir()):
        name = f"{BATCH_FOLDER}/{path.name}"
        if name not in keep and (path.suffix == ".bin" or path.name.endswith(".partial")):
            path.unlink()
            removed.append(name)
    if added or removed or not unchanged:
        log.info(
            "mirror: %d batch files listed, %d written, %d removed, newest batch %d",
            len(files),
            len(added),
            len(removed),
            newest,
        )
    return MirrorRun(written=not unchanged, files=len(files), added=added, removed=removed, newest_sequence=newest)


# --- what a phone checks (docs/spec.md section 14) -------------------------------------------------------------


def open_index(data: bytes, trusted: TrustedKeys, *, held_written_at: int, held_newest: int) -> mirror_pb2.MirrorIndex:
    """The index in ``data`` once its signature verifies with a pinned key and it is not older than the index the
    phone accepted before (``held_written_at``, ``held_newest``; 0 for none)."""
    try:
        signed = mirror_pb2.SignedMirrorIndex.FromString(data)
    except DecodeError:
        raise MirrorRejected("mirror index refused: it is not a signed index") from None
    index = open_envelope(MIRROR_INDEX, signed, trusted, error=MirrorRejected)
    if index.written_at < held_written_at or index.newest_sequence < held_newest:
        raise MirrorRejected(
            f"mirror index refused: written at {index.written_at} with newest batch {index.newest_sequence}, older "
            f"than the index already accepted (written at {held_written_at}, newest batch {held_newest}): a replay"
        )
    sequences = [f.sequence for f in index.files]
    if sequences != sorted(set(sequences)) or any(s > index.newest_sequence for s in sequences):
        raise MirrorRejected("mirror index refused: its files are not in increasing sequence order up to its newest")
    return index


def open_mirror_file(
    entry: mirror_pb2.MirrorFile, data: bytes, trusted: TrustedKeys
) -> tuple[batch_pb2.SignedBatchHeader, batch_pb2.BatchHeader, bytes]:
    """A batch file the index listed: its size and SHA-256 as listed (checked before anything is parsed), then
    the batch's own verification (docs/spec.md section 5), and its sequence the one listed."""
    if len(data) != entry.size:
        raise BatchRejected(f"the file is truncated or too long: {len(data)} of {entry.size} bytes")
    if hashlib.sha256(data).digest() != entry.sha256:
        raise BatchRejected("SHA-256 of the file differs from the index's")
    signed, body = parse_batch_file(data, entry.name)
    header = open_header(signed, trusted)
    if header.sequence != entry.sequence:
        raise BatchRejected(f"the file holds batch {header.sequence}, the index lists it as batch {entry.sequence}")
    open_body(header, body)
    return signed, header, body
