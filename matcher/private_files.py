"""Writing a private key (or any secret) to a file: one way, used for every key the project writes.

The file is created, never reused: an existing file at the path (perhaps world-readable, perhaps a symbolic link
an attacker placed to make us write the key somewhere else) is refused, not overwritten. Its mode is set with
fchmod on the open descriptor, so the umask cannot widen it; its folder is made owner-only.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE, FOLDER_MODE = 0o600, 0o700


def private_folder(folder: Path) -> None:
    """Creates ``folder`` if missing and makes it owner-only (an existing one is tightened, never loosened)."""
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    folder.chmod(folder.stat().st_mode & FOLDER_MODE)


def write_private(path: Path, data: bytes) -> None:
    """Creates ``path`` holding ``data``, readable and writable by its owner only; FileExistsError if anything is
    there already (a symbolic link included), with the path in its message."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        raise FileExistsError(f"{path} exists: a private key file is never overwritten or reused") from None
    with os.fdopen(descriptor, "wb") as out:
        os.fchmod(out.fileno(), FILE_MODE)
        out.write(data)
