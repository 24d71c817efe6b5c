"""What the anonymity hold costs in delay, by case volume: ``python -m bench.anonymity_delay``.

Cases arrive at random (a Poisson process, uniform over the day) into one section of one region, one key each;
the publisher runs every hour and applies the service's own rule (matcher.anonymity.hold_small_sections, the
default configuration, K = 5, a 24-hour deadline) to what is pending; what it releases is published. Each case's
extra delay is the time from the first run after it arrived (when it would have been published without the hold)
to the run that published it. 60 days per volume, seeded; cases of the last two days are left out (their runs
would fall past the horizon). Prints a Markdown table; docs/privacy.md quotes it.

Uniform arrivals are kind to the hold: real uploads bunch in the day and thin out at night, when a section of a
low-volume region waits longer. Cases are counted per section: with the default configuration a region has two
sections (tests and clinical diagnoses; self-reports), each with its own volume.
"""

from __future__ import annotations

import math

import numpy as np

from matcher.anonymity import DEFAULT_ANONYMITY_DEADLINE_SECONDS, DEFAULT_ANONYMITY_MIN_CASES, hold_small_sections
from matcher.exposure_config import default_config
from matcher.model import DiagnosisKey, ReportType
from matcher.store import PendingKey

HOUR = 3600
DAYS = 60
VOLUMES = (1, 2, 3, 5, 10, 20, 50, 120, 500)  # cases a day in one section
SEED = 1


def one_volume(cases_per_day: float, rng: np.random.Generator) -> dict[str, float]:
    config = default_config()
    start = 1_800_000_000 - 1_800_000_000 % 86_400  # a midnight; keys are of the day before, long publishable
    arrivals = np.sort(rng.uniform(0, (DAYS + 2) * 86_400, rng.poisson(cases_per_day * (DAYS + 2)))) + start
    interval = (start - 86_400) // 600
    pending: list[PendingKey] = []
    published_at: dict[int, int] = {}
    sections: list[int] = []  # cases of each published section
    below: int = 0  # sections published with fewer than K cases (their deadline)
    next_case = 0
    for run in range(1, (DAYS + 2) * 24 + 1):
        now = start + run * HOUR
        while next_case < len(arrivals) and arrivals[next_case] <= now:
            key = DiagnosisKey(next_case.to_bytes(16, "big"), interval, 144, ReportType.CONFIRMED_TEST, 0)
            pending.append(PendingKey(str(next_case), key, "VN", str(next_case), int(arrivals[next_case])))
            next_case += 1
        if not pending:
            continue
        cut = hold_small_sections(
            pending, config, now=now, min_cases=DEFAULT_ANONYMITY_MIN_CASES, deadline=DEFAULT_ANONYMITY_DEADLINE_SECONDS
        )
        if cut.released:
            for item in cut.released:
                published_at[int(item.id)] = now
            sections.append(len(cut.released))
            below += len(cut.released) < DEFAULT_ANONYMITY_MIN_CASES
        pending = cut.held_keys
    counted = [n for n in range(len(arrivals)) if arrivals[n] < start + DAYS * 86_400]
    # Without the hold every run that has cases publishes them: a section per hour with any arrival.
    per_run = np.bincount(np.ceil((arrivals - start) / HOUR).astype(np.int64))
    per_run = per_run[per_run > 0]
    without_hold = np.array([math.ceil((arrivals[n] - start) / HOUR) * HOUR + start for n in counted])
    extra = np.array([published_at[n] for n in counted]) - without_hold
    return {
        "cases/day": cases_per_day,
        "cases": len(counted),
        "held a run or more": float((extra > 0).mean()) if len(extra) else 0.0,
        "mean extra delay h": float(extra.mean() / HOUR) if len(extra) else 0.0,
        "p95 extra delay h": float(np.percentile(extra, 95) / HOUR) if len(extra) else 0.0,
        "batches": len(sections),
        "below K": below / len(sections) if sections else 0.0,
        "median cases a batch": float(np.median(sections)) if sections else 0.0,
        "below K without the hold": float((per_run < DEFAULT_ANONYMITY_MIN_CASES).mean()) if len(per_run) else 0.0,
        "median without the hold": float(np.median(per_run)) if len(per_run) else 0.0,
    }


def table() -> str:
    """The Markdown table docs/privacy.md quotes (tests/unit/test_docs.py checks that it still does)."""
    rng = np.random.default_rng(SEED)
    lines = [
        "| cases a day in the section | cases held at least one run | mean extra delay | p95 extra delay "
        "| sections published with fewer than K cases | median cases a section | the same two without the hold |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in (one_volume(volume, rng) for volume in VOLUMES):
        lines.append(
            f"| {row['cases/day']:g} | {row['held a run or more']:.0%} | {row['mean extra delay h']:.1f} h "
            f"| {row['p95 extra delay h']:.1f} h | {row['below K']:.0%} of {row['batches']} "
            f"| {row['median cases a batch']:g} "
            f"| {row['below K without the hold']:.0%}, {row['median without the hold']:g} |"
        )
    return "\n".join(lines)


def main() -> None:
    print(
        f"K = {DEFAULT_ANONYMITY_MIN_CASES}, deadline {DEFAULT_ANONYMITY_DEADLINE_SECONDS // HOUR} h, hourly runs, "
        f"{DAYS} days a volume, seed {SEED}\n"
    )
    print(table())


if __name__ == "__main__":
    main()
