"""What benchmark modules share: a result section with its curves, a timer that repeats and keeps the best run, and
the time budget of the whole run."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Curve:
    """One panel of the scaling figure: named series of (x, y) points, measured in this run."""

    title: str
    x_label: str
    y_label: str
    series: dict[str, list[tuple[float, float]]]
    log_x: bool = False
    log_y: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "x_label": self.x_label,
            "y_label": self.y_label,
            "log_x": self.log_x,
            "log_y": self.log_y,
            "series": {name: [list(point) for point in points] for name, points in self.series.items()},
        }


@dataclass
class Section:
    """One benchmark's results: a table (rows of dicts; the columns are all their keys), notes, curves for the
    figure, and a machine-readable summary."""

    title: str
    rows: list[dict[str, Any]]
    notes: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)  # drawn by the runner into one figure
    seconds: float | None = None  # set by the runner on the last section of each module
    formats: dict[str, str] = field(default_factory=dict)  # column -> format spec in results.md (e.g. ".2f")

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": self.rows,
            "notes": self.notes,
            "summary": self.summary,
            "figures": self.figures,
            "curves": [c.as_json() for c in self.curves],
            "seconds": None if self.seconds is None else round(self.seconds, 1),
        }

    def as_markdown(self) -> list[str]:
        lines = [f"## {self.title}", ""]
        if self.notes:
            lines += [self.notes, ""]
        if self.rows:
            columns = list(dict.fromkeys(column for row in self.rows for column in row))  # every row's, in order
            lines.append("| " + " | ".join(columns) + " |")
            lines.append("|" + "---|" * len(columns))
            for row in self.rows:
                lines.append("| " + " | ".join(_cell(row.get(c), self.formats.get(c)) for c in columns) + " |")
            lines.append("")
        for figure in self.figures:
            lines += [f"![{self.title}]({figure})", ""]
        if self.seconds is not None:
            lines += [f"_{self.seconds:.0f} s_", ""]
        return lines


def _cell(value: Any, spec: str | None = None) -> str:
    if spec is not None and isinstance(value, (int, float)):
        return format(value, spec)
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def best_of(fn: Callable[[], Any], repeat: int = 3, budget_seconds: float = 30.0) -> float:
    """The fastest of ``repeat`` runs of ``fn`` in seconds (fewer if the time budget runs out)."""
    best = float("inf")
    spent = 0.0
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        took = time.perf_counter() - began
        best = min(best, took)
        spent += took
        if spent > budget_seconds:
            break
    return best


# `make bench` must finish within 10 minutes on two cores. The runner starts this clock; a benchmark whose size is
# elastic (the largest batch) runs last and fits itself into what is left.
TOTAL_SECONDS = 540.0
_deadline = math.inf  # no budget unless the runner started one


def start_budget(seconds: float = TOTAL_SECONDS) -> None:
    global _deadline
    _deadline = time.monotonic() + seconds


def seconds_left() -> float:
    return _deadline - time.monotonic()
