"""matcher/memory.py: the malloc settings of `matcher serve` apply (this project runs on glibc)."""

from __future__ import annotations

import subprocess
import sys


def test_the_malloc_settings_apply_on_glibc() -> None:
    # In a child process: the settings last for the life of the process that takes them.
    code = "from matcher import memory; print(memory.tune())"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "True\n"
