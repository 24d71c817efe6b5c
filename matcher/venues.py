"""Venues: the QR payload, hourly venue identifiers, and owner-signed warnings (docs/spec.md, "Venues").

Presence tracing in the manner of CrowdNotifier, with what this service already has:

- A venue owner holds an Ed25519 key pair. The public key goes into the QR code's **payload** (with the venue's
  name, for the visitor's screen); the private key stays in the owner's **trace file**.
- Everything a visitor's phone needs follows from the payload: ``venue_id = SHA-256(VENUE_DOMAIN || PK)[0:16]``
  and, for hour ``h = floor(unix_seconds / 3600)``, the hourly identifier
  ``VID_h = AES-128-ECB_venue_id("EXP-VENUE" || 0x00 * 3 || uint32_le(h))``.
- A warning names an hour range and carries the owner's signature over it
  (``Ed25519(SK, WARNING_DOMAIN || PK || uint32_le(first_hour) || uint32_le(last_hour))``): the service accepts it
  only from an authority (mutual TLS) and only with the owner's signature, so neither alone can warn. The
  service keeps only the ``VID_h`` of the hours warned, never the public key.
- Each ``VID_h`` is published as an element ``(VID_h, h)`` of a venue section, tagged under the batch salt like
  any element: without the payload nobody can tell which venue, or whether any venue they know, was warned.

Pure functions: no clock, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import urllib.parse
from dataclasses import dataclass

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .crypto import aes_ecb

PAYLOAD_PREFIX = "EXPOSURE-VENUE:1:"
VENUE_DOMAIN = b"exposure.v1.Venue\x00"
WARNING_DOMAIN = b"exposure.v1.VenueWarning\x00"
_HOUR_PREFIX = b"EXP-VENUE" + bytes(3)  # 12 bytes, then uint32_le(h): one AES block
HOUR_SECONDS = 3600
PUBLIC_KEY_BYTES = 32
MAX_NAME_BYTES = 64  # a QR code of version 6 or so stays easy to scan at a door


class VenueError(ValueError):
    """A payload, a trace file or a warning that is not what this module makes; the message says why."""


@dataclass(frozen=True)
class Venue:
    """What a visitor's phone learns from the QR code."""

    public_key: bytes
    name: str

    @property
    def venue_id(self) -> bytes:
        return venue_id_of(self.public_key)

    def payload(self) -> str:
        """The QR code's text: the prefix, the public key in unpadded base64url, and the name, percent-encoded."""
        key = base64.urlsafe_b64encode(self.public_key).rstrip(b"=").decode()
        return f"{PAYLOAD_PREFIX}{key}:{urllib.parse.quote(self.name, safe='')}"


@dataclass(frozen=True)
class VenueOwner:
    """What the owner keeps: the venue and its private key (the trace file)."""

    venue: Venue
    private_key: Ed25519PrivateKey

    @classmethod
    def create(cls, name: str) -> VenueOwner:
        """A new venue with a fresh key pair (from the operating system's CSPRNG)."""
        return cls.from_seed(os.urandom(32), name)

    @classmethod
    def from_seed(cls, seed: bytes, name: str) -> VenueOwner:
        """The venue of a 32-byte Ed25519 private key (RFC 8032's seed)."""
        if not name.strip() or len(name.encode()) > MAX_NAME_BYTES:
            raise VenueError(f"a venue's name is 1..{MAX_NAME_BYTES} bytes of UTF-8")
        private_key = Ed25519PrivateKey.from_private_bytes(seed)
        return cls(Venue(_raw_public(private_key.public_key()), name), private_key)

    def sign_warning(self, first_hour: int, last_hour: int) -> bytes:
        return self.private_key.sign(warning_message(self.venue.public_key, first_hour, last_hour))

    def trace(self) -> dict[str, str]:
        """The trace file's content (JSON): the venue's name, its payload and the private key (hex)."""
        seed = self.private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return {"name": self.venue.name, "payload": self.venue.payload(), "private_key": seed.hex()}

    @classmethod
    def from_trace(cls, trace: object) -> VenueOwner:
        if not isinstance(trace, dict):
            raise VenueError(
                'not a venue trace file (expected the object with "payload" and "private_key" that '
                "`matcher-ha venue create` writes)"
            )
        try:
            private_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(trace["private_key"]))
            venue = parse_payload(trace["payload"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VenueError(f"not a venue trace file ({exc})") from None
        if _raw_public(private_key.public_key()) != venue.public_key:
            raise VenueError("the trace file's private key does not belong to its payload")
        return cls(venue, private_key)


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def parse_payload(text: str) -> Venue:
    """The venue a QR code's text names; VenueError for anything else."""
    text = text.strip()
    if not text.startswith(PAYLOAD_PREFIX) or text.count(":") != 3:
        raise VenueError(f"not a venue QR code (it does not start with {PAYLOAD_PREFIX!r})")
    encoded_key, encoded_name = text[len(PAYLOAD_PREFIX) :].split(":")
    try:
        public_key = base64.b64decode(encoded_key + "=" * (-len(encoded_key) % 4), altchars=b"-_", validate=True)
        name = urllib.parse.unquote(encoded_name, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise VenueError("the venue QR code's key or name is not readable") from None
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise VenueError(f"the venue QR code's key is {len(public_key)} bytes, not {PUBLIC_KEY_BYTES}")
    return Venue(public_key, name)


def venue_id_of(public_key: bytes) -> bytes:
    return hashlib.sha256(VENUE_DOMAIN + public_key).digest()[:16]


def hour_identifiers(venue_id: bytes, hours: np.ndarray) -> np.ndarray:
    """``VID_h`` for each hour: ``(n, 16)`` uint8, one AES call for all of them."""
    hours = np.asarray(hours, dtype=np.int64)
    if hours.size and (hours.min() < 0 or hours.max() > 0xFFFFFFFF):
        raise ValueError("hour numbers must fit an unsigned 32-bit integer")
    blocks = np.empty((len(hours), 16), dtype=np.uint8)
    blocks[:, :12] = np.frombuffer(_HOUR_PREFIX, dtype=np.uint8)
    blocks[:, 12:] = hours.astype("<u4").view(np.uint8).reshape(-1, 4)
    return aes_ecb(venue_id, blocks)


def warning_message(public_key: bytes, first_hour: int, last_hour: int) -> bytes:
    """What the owner signs to warn the hours ``first_hour .. last_hour`` (inclusive)."""
    return WARNING_DOMAIN + public_key + struct.pack("<II", first_hour, last_hour)


def verify_warning(public_key: bytes, first_hour: int, last_hour: int, signature: bytes) -> bool:
    """Whether the venue's owner signed this warning."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, warning_message(public_key, first_hour, last_hour)
        )
    except (InvalidSignature, ValueError):
        return False
    return True
