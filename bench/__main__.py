"""Runs every benchmark module and writes bench/results.md and bench/results.json.

A benchmark module is ``bench/bench_<name>.py`` with a function ``run(quick: bool) -> Section | list[Section]``.
Speed claims are ratios against a baseline measured in the same run, because the machines are small and noisy;
absolute numbers are illustrations. The sections' curves are drawn into one figure, bench/scaling.png.
``--quick`` runs only the modules that support it (``QUICK = True``), at a small size, and prints one JSON object
merging their ``summary`` dicts. Modules with ``ELASTIC = True`` run last and size themselves to the time left
(bench.common.seconds_left); results.md lists sections in REPORT_ORDER whatever order they ran in.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

from bench.common import Section, start_budget
from bench.figure import draw

HERE = Path(__file__).resolve().parent
FIGURE = "scaling.png"
REPORT_ORDER = ("filters", "ingest", "distribution", "bandwidth", "store")  # the order; others follow


def _cpu() -> str:
    """The CPU's model name (platform.processor() is often empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def modules() -> list[str]:
    return sorted(f"bench.{p.stem}" for p in HERE.glob("bench_*.py"))


def _report_rank(name: str) -> tuple[int, str]:
    short = name.removeprefix("bench.bench_")
    return (REPORT_ORDER.index(short) if short in REPORT_ORDER else len(REPORT_ORDER), short)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, quick modules only, JSON summary")
    parser.add_argument("--only", action="append", default=[], help="run only modules whose name contains this")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    start_budget()
    selected = []
    for name in modules():
        if args.only and not any(part in name for part in args.only):
            continue
        module = importlib.import_module(name)
        if args.quick and not getattr(module, "QUICK", False):
            continue
        selected.append((name, module))
    by_module: dict[str, list[Section]] = {}
    for name, module in sorted(selected, key=lambda item: getattr(item[1], "ELASTIC", False)):
        began = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        result = module.run(args.quick)
        by_module[name] = result if isinstance(result, list) else [result]
        by_module[name][-1].seconds = time.perf_counter() - began
    total = time.perf_counter() - started
    sections = [section for name in sorted(by_module, key=_report_rank) for section in by_module[name]]

    if args.quick:
        summary: dict = {}
        for section in sections:
            clash = summary.keys() & section.summary.keys()
            if clash:  # one key, one meaning: a later module must not silently overwrite an earlier one's number
                raise AssertionError(f"summary keys reported twice: {sorted(clash)}")
            summary.update(section.summary)
        print(json.dumps(summary, indent=2))
        return 0

    machine = f"{platform.machine()}, {_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    curves = [curve for section in sections for curve in section.curves]
    if curves:
        draw(curves, HERE / FIGURE)
    (HERE / "results.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "seconds": round(total),
                "figure": FIGURE if curves else None,
                "sections": [s.as_json() for s in sections],
            },
            indent=2,
        )
        + "\n"
    )
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine}. Ratios compare rows measured in the same run; the run took {total:.0f} s "
        f"with a load average of {load_before:.1f} at its start and {os.getloadavg()[0]:.1f} at its end (other work "
        "shares the machine) (docs/benchmarks.md says what each row measures).",
        "",
    ]
    if curves:
        lines += [f"![Scaling curves]({FIGURE})", ""]
    for section in sections:
        lines += section.as_markdown()
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'results.md'} and results.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
