"""``make demo``: the whole system at work. 2,000 simulated people with phones, over 14 days, against the real
service on the embedded SQLite store: `matcher serve` with the simulated clock each morning, real TLS, one-time
codes and authority pushes, contacts of cases sharing for F2 warnings,
`matcher publish`, and every phone syncing, verifying and matching each day.

The report is printed, and report.json with its plots stays in demo-out/. Extra arguments go to `matcher-sim`
(e.g. ``python -m matcher.demo --seed 2``).

The service never imports its clients: the demo runs the simulator as a user does, by its console script
(installed beside this interpreter), and takes its place so that its exit status is the demo's.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

DEMO = ["--people", "2000", "--days", "14", "--report", "demo-out"]
SIMULATOR = "matcher-sim"


def simulator() -> str:
    """The `matcher-sim` script of this interpreter's environment, else the first on the PATH."""
    beside = Path(sys.executable).parent / SIMULATOR
    found = str(beside) if beside.exists() else shutil.which(SIMULATOR)
    if found is None:
        sys.exit(f"demo: {SIMULATOR} is not installed (run `make` first)")
    return found


def main() -> NoReturn:
    script = simulator()
    os.execv(script, [script, *DEMO, *sys.argv[1:]])


if __name__ == "__main__":
    main()
