"""What benchmark modules share: a result section, and a timer that repeats and keeps the best run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Section:
    """One benchmark's results: a table (rows of dicts with the same keys), notes, and machine-readable summary."""

    title: str
    rows: list[dict[str, Any]]
    notes: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"title": self.title, "rows": self.rows, "notes": self.notes, "summary": self.summary,
                "figures": self.figures, "seconds": round(self.seconds, 1)}

    def as_markdown(self) -> list[str]:
        lines = [f"## {self.title}", ""]
        if self.notes:
            lines += [self.notes, ""]
        if self.rows:
            columns = list(self.rows[0])
            lines.append("| " + " | ".join(columns) + " |")
            lines.append("|" + "---|" * len(columns))
            for row in self.rows:
                lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
            lines.append("")
        for figure in self.figures:
            lines += [f"![{self.title}]({figure})", ""]
        lines.append(f"_{self.seconds:.0f} s_")
        lines.append("")
        return lines


def _cell(value: Any) -> str:
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
