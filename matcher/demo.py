"""``make demo``: the whole system at work. 2,000 simulated people with phones, over 14 days, against the real
service on the embedded SQLite store: `matcher serve` with the simulated clock each morning, real TLS, one-time
codes and authority pushes, `matcher publish`, and every phone syncing, verifying and matching each day.

The report is printed, and report.json with its plots stays in demo-out/. Extra arguments go to `matcher-sim`
(e.g. ``python -m matcher.demo --seed 2``).
"""

from __future__ import annotations

import sys
from typing import NoReturn

from clients.sim.cli import main as simulate

DEMO = ["--people", "2000", "--days", "14", "--report", "demo-out"]


def main() -> NoReturn:
    simulate(DEMO + sys.argv[1:])


if __name__ == "__main__":
    main()
