"""Making a file or folder read-only for a while: with permission bits, or, as root (whom they do not stop), by
making it immutable (chattr +i)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Makes a file or folder read-only for this process for the duration of the block."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    assert chattr, "running as root, the read-only tests need chattr: sudo apt-get install e2fsprogs"
    made = subprocess.run([chattr, "+i", str(path)], check=False, capture_output=True, text=True)
    assert made.returncode == 0, (
        f"chattr +i {path} failed ({made.stderr.strip()}): run the tests on ext4 or as non-root"
    )
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)
