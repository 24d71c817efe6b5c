"""Runs every benchmark module and writes bench/results.md and bench/results.json.

A benchmark module is ``bench/bench_<name>.py`` with a function ``run(quick: bool) -> Section``. Speed claims are
ratios against a baseline measured in the same run, because the machines are small and noisy; absolute numbers
are illustrations. ``--quick`` runs only the modules that support it, at a small size, and prints one JSON object
merging their ``summary`` dicts.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

from bench.common import Section

HERE = Path(__file__).resolve().parent


def modules() -> list[str]:
    return sorted(f"bench.{p.stem}" for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, quick modules only, JSON summary")
    parser.add_argument("--only", action="append", default=[], help="run only modules whose name contains this")
    args = parser.parse_args(argv)

    sections: list[Section] = []
    for name in modules():
        if args.only and not any(part in name for part in args.only):
            continue
        module = importlib.import_module(name)
        if args.quick and not getattr(module, "QUICK", False):
            continue
        began = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        section = module.run(args.quick)
        section.seconds = time.perf_counter() - began
        sections.append(section)

    if args.quick:
        summary: dict = {}
        for section in sections:
            summary.update(section.summary)
        print(json.dumps(summary, indent=2))
        return 0

    machine = f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}"
    (HERE / "results.json").write_text(
        json.dumps({"machine": machine, "sections": [s.as_json() for s in sections]}, indent=2) + "\n"
    )
    lines = ["# Benchmark results", "", f"Machine: {machine}. Ratios compare rows measured in the same run.", ""]
    for section in sections:
        lines += section.as_markdown()
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'results.md'} and results.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
