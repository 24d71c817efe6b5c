"""One-time upload codes: what a health authority gives a patient so that the phone can share its own keys.

A code is 12 characters from an alphabet without look-alikes (no 0/O, 1/I/L), about 59 bits: far beyond what
can be guessed within its lifetime at any rate the service accepts. Only an HMAC-SHA-256 of the normalised code
is stored, under a secret kept in a file beside the signing key (``codes.key``), not in the database: a copy of
the database neither hands out working codes nor lets anyone search the 2^59 codes offline for the live ones.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 12
MAX_TTL_SECONDS = 86400
DEFAULT_TTL_SECONDS = 3600
SECRET_BYTES = 32
SECRET_FILE = "codes.key"  # in the server's TLS folder, beside signing.key
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


def code_hash(code: str, secret: bytes) -> bytes:
    """What the store keeps of a normalised code: its HMAC under the server's code secret."""
    return hmac.new(secret, b"exposure.v1.code\x00" + code.encode(), hashlib.sha256).digest()


def new_secret_file_content() -> bytes:
    return secrets.token_bytes(SECRET_BYTES).hex().encode() + b"\n"


def load_secret(path: Path) -> bytes:
    """The code secret from ``path`` (hex); ValueError naming the file when it is missing or not one."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ValueError(
            f"{path} is missing: the secret upload codes are stored under "
            "(`matcher certs --out DIR` adds one to an existing folder)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the code secret ({exc})") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"{path}: the code secret must be {SECRET_BYTES} bytes written as hex")
    return secret


def display(code: str) -> str:
    """Groups of four for reading aloud: ABCD-EFGH-JKMN."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))
