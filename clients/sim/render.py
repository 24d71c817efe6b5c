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
        text += (
            f"; {held} still held after the last day's uploads, published {extra} "
            f"morning{'s' if extra > 1 else ''} after the run"
        )
    return text


def _contacts(report: dict[str, Any]) -> str:
    """Who was designated F1 and shared as a case's contact."""
    c = report["contacts"]
    if not c["designated_f1"]:
        return ""
    return (
        f"; {c['designated_f1']} designated F1 after a new F1 alert, {c['shared']} shared as contacts "
        f"(contact share {report['run']['contact_share']:g}), {c['published']} published"
    )


def _venues(report: dict[str, Any], console: Console) -> None:
    v = report["venues"]
    counts = ", ".join(f"{n} {name}s" for name, n in v["venues"].items())
    table = Table(
        title=f"Venues: {counts}; {v['visits']:,} visits, {v['checkins']:,} checked in, "
        f"{v['room_infections']} infections in rooms",
        title_justify="left",
        show_header=False,
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row(
        "venue recall, >= 15 min in a room with a case", f"{_pct(v['recall'])}  ({v['people_found']} of {v['people']})"
    )
    table.add_row(
        "  of those, both had checked in",
        f"{_pct(v['recall_reachable'])}  ({v['reachable_found']} of {v['reachable_people']})",
    )
    table.add_row(
        "Bluetooth recall of the same people (F1 or F2)",
        f"{_pct(v['bluetooth_recall'])}  ({v['bluetooth_found']} of {v['people']})",
    )
    table.add_row("either", f"{_pct(v['recall_either'])}  ({v['either_found']} of {v['people']})")
    if v["mean_days_to_alert"] is not None:
        table.add_row("days from visit to venue alert (mean)", f"{v['mean_days_to_alert']:.1f}")
    a = v["alerts"]
    table.add_row("venue alerts", f"{a['total']}")
    table.add_row(
        "venue false alarms per 10,000 person-days", f"{v['false_alarms_per_10k_person_days']:.2f}  ({a['false']})"
    )
    table.add_row("  in the room with a case, < 15 min", f"{a['shorter']}")
    table.add_row("  in a warned hour, not at the same time as the case", f"{a['same_hour']}")
    table.add_row("  at no warned venue-hour (filter false positives)", f"{a['no_visit']}")
    table.add_row(
        "warnings sent (one per check-in a case showed)",
        f"{v['warnings']}  ({v['hours_published']} hours "
        f"published, {_bytes(v['bytes'] / max(1, report['days'] + report['run']['mornings_after_the_run']))}"
        " a day)",
    )
    console.print(table)


def text_report(report: dict[str, Any], console: Console) -> None:
    r, alerts, epi, t = report["recall_detail"], report["alerts"], report["epidemic"], report["time"]
    r2, alerts2 = report["recall_f2_detail"], report["alerts_f2"]
    console.print(
        f"[bold]{report['people']:,} people, {report['days']} days[/] from {report['run']['start']} "
        f"({report['run']['store']} store, one batch a day), seed {report['run']['seed']}: "
        f"{epi['infected']} infected, {epi['diagnosed']} diagnosed, {epi['cases_uploaded']} cases uploaded "
        f"({epi['shared_with_code']} shared with a code, {epi['pushed_by_authority']} pushed by the authority, "
        f"{epi['declined']} declined), {report['cases']} published" + _anonymity_sets(report) + _contacts(report)
    )
    headline = Table(
        title="Exposure notification: F1 near a case, F2 near a case's contact who shared",
        title_justify="left",
        show_header=False,
    )
    headline.add_column(style="bold")
    headline.add_column(justify="right")
    headline.add_row(
        "F1 recall, truly exposed people (>= 15 min at <= 2 m)",
        f"{_pct(r['recall'])}  ({r['people_found']} of {r['people']})",
    )
    if r.get("people_only_contact_keys"):
        headline.add_row(
            "  not counting people only a contact's keys could warn",
            f"{_pct(r['recall_with_case_keys'])}  ({r['people_found_with_case_keys']} of "
            f"{r['people'] - r['people_only_contact_keys']})",
        )
    headline.add_row(
        "F1 recall, truly exposed person-days",
        f"{_pct(r['recall_person_days'])}  ({r['person_days_found']} of {r['person_days']})",
    )
    if r["mean_days_to_alert"] is not None:
        headline.add_row("days from exposure to alert (mean)", f"{r['mean_days_to_alert']:.1f}")
    headline.add_row("F1 alerts", f"{alerts['total']}")
    headline.add_row(
        "F1 false alarms per 10,000 person-days",
        f"{report['false_alarms_per_10k_person_days']:.2f}  ({alerts['false']})",
    )
    headline.add_row("  after < 15 min with cases", f"{alerts['shorter']}")
    headline.add_row("  after >= 15 min, not all at <= 2 m", f"{alerts['farther']}")
    headline.add_row(
        "  with no contact at all (filter false positives)",
        f"{alerts['no_contact']}  (target {alerts['target_scaled_to_run']:.3f})",
    )
    headline.add_row(
        "exposed to infections never reported (cannot be warned)", f"{epi['people_exposed_to_unreported_infections']}"
    )
    if report["contacts"]["shared"]:
        headline.add_row(
            "F2 recall, >= 15 min at <= 2 m with a sharing contact",
            f"{_pct(r2['recall'])}  ({r2['people_found']} of {r2['people']})",
        )
        headline.add_row("  warned at F2 (the others at F1)", f"{r2['people_found_at_f2']}")
        if r2["mean_days_to_alert"] is not None:
            headline.add_row("  days from exposure to alert (mean)", f"{r2['mean_days_to_alert']:.1f}")
        headline.add_row("F2 alerts", f"{alerts2['total']}")
        headline.add_row(
            "F2 false alarms per 10,000 person-days",
            f"{report['false_alarms_f2_per_10k_person_days']:.2f}  ({alerts2['false']})",
        )
        headline.add_row("  after a shorter or farther contact", f"{alerts2['shorter'] + alerts2['farther']}")
        headline.add_row("  near a contact whose own F1 alert was false", f"{alerts2['untrue_source']}")
        headline.add_row("  with no contact at all (filter false positives)", f"{alerts2['no_contact']}")
        headline.add_row("F1 exposures warned at F2 only", f"{alerts['truly_exposed_warned_at_f2_only']}")
        headline.add_row(
            "F1 exposures to a case's keys shared as a contact's",
            f"{report['contacts']['f1_person_days_only_contact_keys']}",
        )
    console.print(headline)
    _venues(report, console)

    by_duration = Table(title="Recall by close minutes (worst day)", title_justify="left")
    for name in ("minutes", "F1 people", "alerted", "recall", "F2 people", "alerted", "recall"):
        by_duration.add_column(name, justify="right")
    for row, row2 in zip(report["recall_by_duration"], report["recall_f2_by_duration"]):
        by_duration.add_row(
            row["minutes"],
            str(row["people"]),
            str(row["found"]),
            _pct(row["recall"]),
            str(row2["people"]),
            str(row2["found"]),
            _pct(row2["recall"]),
        )
    console.print(by_duration)

    cost = Table(title="Bandwidth and time", title_justify="left")
    cost.add_column("")
    cost.add_column("batches (this service)", justify="right")
    cost.add_column("GAEN key files", justify="right")
    cost.add_row("published bytes per case", _bytes(report["bytes_per_case"]), _bytes(report["gaen_bytes_per_case"]))
    elements = report["bandwidth"]["elements_per_case"]
    pruned = " (contact intervals only)" if report["run"]["contact_intervals"] else ""
    cost.add_row(f"published identifiers per case{pruned}", f"{elements:,.0f}" if elements else "-", "")
    bandwidth = report["bandwidth"]
    if bandwidth["contact_keys_published"]:
        cost.add_row("published bytes per contact (F2)", _bytes(bandwidth["bytes_per_contact"]), "")
        cost.add_row(
            "published keys, cases + contacts",
            f"{bandwidth['case_keys_published']:,} + "
            f"{bandwidth['contact_keys_published']:,} (x{bandwidth['keys_multiplier']:.2f})",
            "",
        )
    cost.add_row(
        "published bytes per phone per day",
        _bytes(report["batch_bytes_per_phone_day"]),
        _bytes(report["gaen_bytes_per_phone_day"]),
    )
    if bandwidth["contact_keys_published"]:
        cost.add_row(
            "  without F2 (no RECURSIVE sections)",
            _bytes(report["batch_bytes_per_phone_day_without_f2"]),
            _bytes(bandwidth["gaen_bytes_per_phone_day_without_f2"]),
        )
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
    tiers = [("F1: with cases", rows, ("#bbbbbb", "#2b7bba"))]
    if report["contacts"]["shared"]:
        tiers.append(("F2: with contacts who shared", report["recall_f2_by_duration"], ("#dddddd", "#7fb8e0")))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    width = 0.8 / len(tiers)
    for t, (label, tier_rows, (below, above)) in enumerate(tiers):
        positions = [i - 0.4 + width * (t + 0.5) for i in range(len(tier_rows))]
        values = [row["recall"] or 0 for row in tier_rows]
        colours = [below if row["low"] < 15 else above for row in tier_rows]
        bars = ax.bar(
            positions,
            values,
            width=width,
            color=colours,
            label=label if len(tiers) > 1 else None,
            edgecolor=above,
            linewidth=0.8,
        )
        for bar, row in zip(bars, tier_rows):
            ax.annotate(
                f"{row['found']}/{row['people']}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8 if len(tiers) > 1 else 9,
            )
    ax.set_xticks(range(len(rows)), [row["minutes"] for row in rows])
    ax.axhline(0.95, color="#d62728", lw=0.8, ls="--", label="0.95")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("alerted (recall)")
    ax.set_xlabel("minutes at <= 2 m on the worst day")
    ax.set_title(f"Recall by exposure duration ({title})", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    mornings = list(range(1, report["days"] + report["run"]["mornings_after_the_run"] + 1))
    by_morning = report["alerts"]["by_morning"]
    by_morning_f2 = report["alerts_f2"]["by_morning"]
    kinds: list[tuple[Any, tuple[str, ...], str, str]] = [
        (by_morning, ("true",), "F1, truly exposed", "#2b7bba"),
        (by_morning, ("shorter",), "F1, contact < 15 min", "#f0c030"),
        (by_morning, ("farther",), "F1, contact >= 15 min, not all at <= 2 m", "#f08030"),
        (by_morning, ("no_contact",), "F1, no contact (filter false positive)", "#d62728"),
    ]
    if report["contacts"]["shared"]:
        kinds += [
            (by_morning_f2, ("true", "f1_day"), "F2, truly exposed", "#7fb8e0"),
            (by_morning_f2, ("shorter", "farther", "untrue_source", "no_contact"), "F2, false alarm", "#c8a2d8"),
        ]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bottom = [0] * len(mornings)
    for source, keys, label, colour in kinds:
        counts = [sum(source.get(str(m), {}).get(key, 0) for key in keys) for m in mornings]
        ax.bar(mornings, counts, bottom=bottom, label=label, color=colour)
        bottom = [b + c for b, c in zip(bottom, counts)]
    ax.set_xlabel("morning (after simulated day)")
    ax.set_ylabel("new alerts")
    ax.set_title(f"Alerts per day ({title})", fontsize=10)
    ax.set_ylim(0, max([*bottom, 1]) * (1.45 if len(kinds) > 4 else 1.1))
    ax.legend(fontsize=7, ncol=2 if len(kinds) > 4 else 1, loc="upper left")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)

    days = report["bandwidth"]["by_morning"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(mornings, [d["batch_bytes"] / 1024 for d in days], marker="o", label="batches (this service)")
    if report["bandwidth"]["contact_keys_published"]:
        ax.plot(
            mornings,
            [(d["batch_bytes"] - d["contact_bytes"]) / 1024 for d in days],
            marker=".",
            ls="--",
            label="batches without F2 (no RECURSIVE sections)",
        )
    ax.plot(mornings, [d["gaen_bytes"] / 1024 for d in days], marker="s", label="GAEN key file, same keys")
    ax.plot(
        mornings,
        [d["downloaded_per_phone"] / 1024 for d in days],
        ls=":",
        color="#555555",
        label="downloaded per phone (all calls)",
    )
    ax.set_xlabel("morning (after simulated day)")
    ax.set_ylabel("KiB per phone")
    ax.set_title(f"Bytes per phone per day ({title})", fontsize=10)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths
