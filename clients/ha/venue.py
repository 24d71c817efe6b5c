"""Venues for health authorities: making a venue's QR code and trace file, and warning a venue's visitors.

- ``create``: a fresh key pair; the QR code's payload as text, as PNG and as SVG (segno, a maintained QR
  library), and the owner's private trace file (mode 0600, never overwritten).
- ``warning_request``: the hours a window touches, signed with the owner's private key from the trace file. Only
  those hours' identifiers can come of it at the service: the request carries the venue's public key, the hours
  and the owner's signature, never the trace file's key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import segno

from exposure.v1 import authority_pb2
from matcher.model import MAX_VENUE_WARNING_HOURS
from matcher.private_files import private_folder, write_private
from matcher.venues import HOUR_SECONDS, VenueOwner
from matcher.venues import VenueError as VenueError  # raised here too: callers catch venue.VenueError

PAYLOAD_FILE, PNG_FILE, SVG_FILE, TRACE_FILE = "payload.txt", "qr.png", "qr.svg", "trace.json"


@dataclass(frozen=True)
class Created:
    owner: VenueOwner
    folder: Path


def create(name: str, folder: Path) -> Created:
    """Writes a new venue's files into ``folder`` (created if missing); VenueError if it already holds a trace file
    (a venue's key is never replaced by accident: its QR codes are printed and hung)."""
    owner = VenueOwner.create(name)
    private_folder(folder)
    trace = folder / TRACE_FILE
    try:
        write_private(trace, (json.dumps(owner.trace(), indent=2, ensure_ascii=False) + "\n").encode())
    except FileExistsError:
        raise VenueError(f"{trace} exists: a venue's trace file is never overwritten (choose another folder)") from None
    payload = owner.venue.payload()
    (folder / PAYLOAD_FILE).write_text(payload + "\n")
    # Error correction M (15%): a printed code at a door gets scuffed; the payload stays a small code.
    code = segno.make(payload, error="m", micro=False)
    code.save(str(folder / PNG_FILE), scale=8, border=4)
    code.save(str(folder / SVG_FILE), scale=8, border=4)
    return Created(owner, folder)


def read_trace(path: Path) -> VenueOwner:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VenueError(f"{path}: cannot read a venue trace file ({exc.strerror})") from None
    except ValueError:  # also a binary file's UnicodeDecodeError
        raise VenueError(f"{path}: not a venue trace file (not JSON text)") from None
    try:
        return VenueOwner.from_trace(document)
    except VenueError as exc:
        raise VenueError(f"{path}: {exc}") from None


def hours_of(start: int, end: int) -> tuple[int, int]:
    """The first and last hour (inclusive) that the window ``[start, end)`` touches."""
    if end <= start:
        raise VenueError("--until must be after --from")
    first, last = start // HOUR_SECONDS, (end - 1) // HOUR_SECONDS
    if last - first + 1 > MAX_VENUE_WARNING_HOURS:
        raise VenueError(f"a warning covers at most {MAX_VENUE_WARNING_HOURS} hours, this window {last - first + 1}")
    return first, last


def warning_request(
    owner: VenueOwner, start: int, end: int, region: str = ""
) -> authority_pb2.SubmitVenueWarningRequest:
    """The signed warning of the hours ``[start, end)`` touches, with a submission id made from its content so
    that sending it again is answered from the first time."""
    first, last = hours_of(start, end)
    public_key = owner.venue.public_key
    digest = hashlib.sha256(public_key + first.to_bytes(4, "little") + last.to_bytes(4, "little") + region.encode())
    return authority_pb2.SubmitVenueWarningRequest(
        submission_id="venue-" + digest.hexdigest()[:24],
        venue_public_key=public_key,
        first_hour=first,
        last_hour=last,
        owner_signature=owner.sign_warning(first, last),
        region=region,
    )
