"""One-time upload codes: what a health authority gives a patient so that the phone can share its own keys.

A code is 12 characters from an alphabet without look-alikes (no 0/O, 1/I/L), about 59 bits: far beyond what
can be guessed within its lifetime at any rate the service accepts. Only the SHA-256 of the normalised code is
stored, so a copy of the database does not hand out working codes.
"""

from __future__ import annotations

import hashlib
import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 12
MAX_TTL_SECONDS = 86400
DEFAULT_TTL_SECONDS = 3600
# The one refusal of a code, whatever the reason (unknown, used, expired, its authority revoked): a caller who can
# tell the reasons apart can probe which codes exist.
REFUSED = "the code is not valid: it is unknown, already used or expired"


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise(code: str) -> str | None:
    """The code as issued, forgiving case, spaces and dashes people type; None if it cannot be a code."""
    cleaned = code.replace("-", "").replace(" ", "").upper()
    if len(cleaned) != LENGTH or not set(cleaned) <= set(ALPHABET):
        return None
    return cleaned


def code_hash(code: str) -> bytes:
    return hashlib.sha256(b"exposure.v1.code\x00" + code.encode()).digest()


def display(code: str) -> str:
    """Groups of four for reading aloud: ABCD-EFGH-JKMN."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))
