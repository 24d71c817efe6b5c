"""The scaling figure: every section's curves as panels side by side in one PNG (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a build machine

import matplotlib.pyplot as plt

from bench.common import Curve

MAX_LABELLED_XS = 6


def draw(curves: list[Curve], path: Path) -> None:
    figure, axes = plt.subplots(1, len(curves), figsize=(6.5 * len(curves), 4.8), squeeze=False)
    for ax, curve in zip(axes[0], curves):
        for name, points in curve.series.items():
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=name)
        if curve.log_x:
            ax.set_xscale("log")
        xs_all = sorted({x for points in curve.series.values() for x, _ in points})
        if len(xs_all) <= MAX_LABELLED_XS:  # label the measured sizes themselves, not powers of ten
            ax.set_xticks(xs_all, [f"{x:,.0f}" for x in xs_all])
            ax.xaxis.set_minor_locator(plt.NullLocator())
        if curve.log_y:
            ax.set_yscale("log")
        ax.set_title(curve.title, fontsize=11)
        ax.set_xlabel(curve.x_label)
        ax.set_ylabel(curve.y_label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
