"""The report for people: a compact text summary (rich tables) and PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

PLOTS = ("recall.png", "alerts.png", "bandwidth.png")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _bytes(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1024:,.1f} KiB" if value >= 10 * 1024 else f"{value:,.0f} B"


def _anonymity_sets(report: dict[str, Any]) -> str:
    """How the published cases were grouped into batches, and what the last day's hold added after the run."""
    sets = sorted(report["cases_per_batch"])
    if not sets:
        return ""
    text = f" in {len(sets)} batches of {sets[0]}-{sets[-1]} cases (median {sets[len(sets) // 2]})"
    extra, held = report["run"]["mornings_after_the_run"], report["epidemic"]["cases_held_at_end"]
    if extra:
        text += (f"; {held} still held after the last day's uploads, published {extra} "
                 f"morning{'s' if extra > 1 else ''} after the run")
    return text


def text_report(report: dict[str, Any], console: Console) -> None:
    r, alerts, epi, t = report["recall_detail"], report["alerts"], report["epidemic"], report["time"]
    console.print(
        f"[bold]{report['people']:,} people, {report['days']} days[/] from {report['run']['start']} "
        f"({report['run']['store']} store, one batch a day), seed {report['run']['seed']}: "
        f"{epi['infected']} infected, {epi['diagnosed']} diagnosed, {epi['cases_uploaded']} cases uploaded "
        f"({epi['shared_with_code']} shared with a code, {epi['pushed_by_authority']} pushed by the authority, "
        f"{epi['declined']} declined), {report['cases']} published" + _anonymity_sets(report)
    )
    headline = Table(title="Exposure notification", title_justify="left", show_header=False)
    headline.add_column(style="bold")
    headline.add_column(justify="right")
    headline.add_row("recall, truly exposed people (>= 15 min at <= 2 m)",
                     f"{_pct(r['recall'])}  ({r['people_found']} of {r['people']})")
    headline.add_row("recall, truly exposed person-days", f"{_pct(r['recall_person_days'])}  "
                     f"({r['person_days_found']} of {r['person_days']})")
    if r["mean_days_to_alert"] is not None:
        headline.add_row("days from exposure to alert (mean)", f"{r['mean_days_to_alert']:.1f}")
    headline.add_row("alerts", f"{alerts['total']}")
    headline.add_row("false alarms per 10,000 person-days", f"{report['false_alarms_per_10k_person_days']:.2f}  "
                     f"({alerts['false']})")
    headline.add_row("  after < 15 min with cases", f"{alerts['shorter']}")
    headline.add_row("  after >= 15 min, not all at <= 2 m", f"{alerts['farther']}")
    headline.add_row("  with no contact at all (filter false positives)",
                     f"{alerts['no_contact']}  (target {alerts['target_scaled_to_run']:.3f})")
    headline.add_row("exposed to infections never reported (cannot be warned)",
                     f"{epi['people_exposed_to_unreported_infections']}")
    console.print(headline)

    by_duration = Table(title="Recall by close minutes", title_justify="left")
    for name in ("worst day", "people", "alerted", "recall"):
        by_duration.add_column(name, justify="right")
    for row in report["recall_by_duration"]:
        by_duration.add_row(row["minutes"], str(row["people"]), str(row["found"]), _pct(row["recall"]))
    console.print(by_duration)

    cost = Table(title="Bandwidth and time", title_justify="left")
    cost.add_column("")
    cost.add_column("batches (this service)", justify="right")
    cost.add_column("GAEN key files", justify="right")
    cost.add_row("published bytes per case", _bytes(report["bytes_per_case"]), _bytes(report["gaen_bytes_per_case"]))
    elements = report["bandwidth"]["elements_per_case"]
    pruned = " (contact intervals only)" if report["run"]["contact_intervals"] else ""
    cost.add_row(f"published identifiers per case{pruned}", f"{elements:,.0f}" if elements else "-", "")
    cost.add_row("published bytes per phone per day", _bytes(report["batch_bytes_per_phone_day"]),
                 _bytes(report["gaen_bytes_per_phone_day"]))
    cost.add_row("downloaded per phone per day (all calls)", _bytes(report["bytes_per_phone_day"]), "")
    console.print(cost)
    if report["bandwidth"]["batches"]:
        console.print(
            f"server: a batch built in {t['publish_build_seconds']['mean'] * 1000:.0f} ms on average "
            f"(max {t['publish_build_seconds']['max'] * 1000:.0f} ms; the `matcher publish` command "
            f"{t['publish_command_seconds']['mean']:.2f} s with its start)"
        )
    console.print(
        f"phone, each day: sync {t['phone_sync_ms']['mean']:.1f} ms (p95 {t['phone_sync_ms']['p95']:.1f}), "
        f"check {t['phone_check_ms']['mean']:.1f} ms (p95 {t['phone_check_ms']['p95']:.1f}); "
        f"the whole run {t['run_seconds']:.0f} s"
    )


def plots(report: dict[str, Any], folder: Path) -> list[Path]:
    """Writes the PNG plots into ``folder``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = f"{report['people']:,} people, {report['days']} days, {report['cases']} cases"
    paths = [folder / name for name in PLOTS]

    rows = report["recall_by_duration"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    values = [row["recall"] or 0 for row in rows]
    colours = ["#bbbbbb" if (row["low"] < 15) else "#2b7bba" for row in rows]
    bars = ax.bar([row["minutes"] for row in rows], values, color=colours)
    for bar, row in zip(bars, rows):
        ax.annotate(f"{row['found']}/{row['people']}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.axhline(0.95, color="#d62728", lw=0.8, ls="--", label="0.95")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("alerted (recall)")
    ax.set_xlabel("minutes at <= 2 m with infectious cases on the worst day")
    ax.set_title(f"Recall by exposure duration ({title})", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    mornings = list(range(1, report["days"] + report["run"]["mornings_after_the_run"] + 1))
    by_morning = report["alerts"]["by_morning"]
    kinds = [("true", "truly exposed", "#2b7bba"), ("shorter", "contact < 15 min", "#f0c030"),
             ("farther", "contact >= 15 min, not all at <= 2 m", "#f08030"),
             ("no_contact", "no contact (filter false positive)", "#d62728")]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bottom = [0] * len(mornings)
    for key, label, colour in kinds:
        counts = [by_morning.get(str(m), {}).get(key, 0) for m in mornings]
        ax.bar(mornings, counts, bottom=bottom, label=label, color=colour)
        bottom = [b + c for b, c in zip(bottom, counts)]
    ax.set_xlabel("morning (after simulated day)")
    ax.set_ylabel("new alerts")
    ax.set_title(f"Alerts per day ({title})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)

    days = report["bandwidth"]["by_morning"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(mornings, [d["batch_bytes"] / 1024 for d in days], marker="o", label="batches (this service)")
    ax.plot(mornings, [d["gaen_bytes"] / 1024 for d in days], marker="s", label="GAEN key file, same keys")
    ax.plot(mornings, [d["downloaded_per_phone"] / 1024 for d in days], ls=":", color="#555555",
            label="downloaded per phone (all calls)")
    ax.set_xlabel("morning (after simulated day)")
    ax.set_ylabel("KiB per phone")
    ax.set_title(f"Bytes per phone per day ({title})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths
