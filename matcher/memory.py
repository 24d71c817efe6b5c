"""glibc malloc settings for a long-running server that moves megabyte messages: flat memory, no page faults.

Two defaults of glibc's malloc made `matcher serve` slow and its memory climb (bench/soak-results.md has the
measurements):

- **Arenas.** Every thread that allocates while another holds the main arena gets an arena of its own, up to
  8 per core (16 here). grpcio's 32 worker threads spread over them, and memory freed in one arena is reused
  only by the threads that land on it: each arena keeps its own high-water mark, so the total creeps up for as
  long as new threads and new arenas keep joining. Two arenas bound it.
- **The mmap threshold.** An allocation above it (128 KiB at start) gets fresh pages from the kernel and gives
  them back when freed, so every 1 MiB message costs 256 page faults and the zeroing of a megabyte; glibc raises
  the threshold as it sees such blocks freed, and then trims the heap top, which faults them in again. A fixed
  threshold above the largest message and a trim threshold well above it keep those pages in the process.

``tune`` sets both through mallopt(3), before any thread exists. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

ARENAS = 2
MMAP_THRESHOLD = 8 << 20  # bytes: above a 1 MiB BatchChunk and a 4 MiB message, below a whole cache fill
TRIM_THRESHOLD = 64 << 20  # bytes of free heap top kept rather than given back


def tune(arenas: int = ARENAS, mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Applies the settings to this process; False where there is no glibc mallopt."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(
        mallopt(option, value) == 1
        for option, value in (
            (M_ARENA_MAX, arenas),
            (M_MMAP_THRESHOLD, mmap_threshold),
            (M_TRIM_THRESHOLD, trim_threshold),
        )
    )
