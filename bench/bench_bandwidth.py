"""Bandwidth: bytes published per confirmed case and downloaded per phone per day, for 5-day and 8-day cases at
1,000 and 10,000 cases a day, from batches really cut by the publisher, next to GAEN export files for the same
keys and DP-3T; and what each lever of publication format 2 saves against format 1.

A day of cases is pushed into a real SQLite store an hour at a time and the publisher cuts the hourly batch
(24 a day, with its own choice of error rate and sections); a phone downloads every batch of the day, so its daily
bytes are all the signed headers and bodies, each batch verified here as a phone verifies it. The baselines carry
the same keys: GAEN export files built with the health-authority client's ``build_export`` (one signed export.zip
per hourly batch, as a GAEN key server publishes), GAEN's 28 bytes a key, and the 2,880 bytes a 5-day case of
DP-3T's unlinkable design.

The lever table re-sizes the 8-day day at 1,000 cases a day under each step from format 1 to format 2: Bloom
filters as pybloom-live sizes them, Golomb-Rice coded sets as matcher.filters codes them (real sets of the keys'
real element hashes), and at the end the publisher's own batches.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pybloom_live import BloomFilter

from bench.common import Curve, Section
from clients.ha.gaen_export import build_export, write_export_zip
from clients.ha.source_keys import SourceKey
from exposure.v1 import batch_pb2
from matcher import fprate
from matcher.batches import budget_error_rate, elements_of, key_hashes, open_batch
from matcher.exposure_config import default_config, infectiousness_of
from matcher.filters import encode_set, hash_range_for
from matcher.intervals import INTERVAL_SECONDS, INTERVALS_PER_DAY
from matcher.model import DiagnosisKey, ReportType, Submission
from matcher.publisher import Publisher
from matcher.signing import SigningKey, TrustedKeys, generate_signing_key
from matcher.store.sqlite import SqliteStore

QUICK = True  # the quick run cuts only the 1,000-case day of 5-day cases
CASES_PER_DAY = (1_000, 10_000)
CASE_DAYS = fprate.CASE_DAYS  # (5, 8): DP-3T's 5 contagious days; 2 days before symptom onset to 5 after
DAYS_BEFORE_ONSET = 2  # a case's first published key: days since onset -2
LEVER_CASES = 1_000  # the lever table re-sizes the 8-day day at this volume
ELEMENTS_8_DAY = 8 * INTERVALS_PER_DAY
DAY = 1795132800  # 2026-11-20 00:00 UTC
FIRST_INTERVAL = DAY // 600
RETENTION_DAYS = 14
PUBLISH_INTERVAL = 3600
HOURS = 24
BYTES_PER_CASE_BAR = fprate.DP3T_BYTES_PER_CASE  # a 5-day case must cost no more than DP-3T's
BITS_PER_ELEMENT_BAR = 1.1  # all-in bits per element, at most this times log2(1/eps)
CONFIG = default_config()
# Format 1 as main measured it before format 2 (bench/results.md of 39b7579): 8-day cases at 1,000 cases a day.
FORMAT_1_MEASURED = "7,003 bytes per 8-day case all-in at 1,000 cases a day, 48.6 bits an element"


def case_keys(case: int, days: int) -> list[DiagnosisKey]:
    """A case's ``days`` daily keys from 2 days before symptom onset, the last ending 2 days ago (past its
    embargo at any hour of the day): 5-day cases are HIGH throughout under the default configuration, 8-day cases
    HIGH for 6 days and STANDARD for 2, all published in one section."""
    return [
        DiagnosisKey(
            hashlib.sha256(f"case-{days}d-{case}-{day}".encode()).digest()[:16],
            FIRST_INTERVAL - INTERVALS_PER_DAY * (days + 1 - day),
            INTERVALS_PER_DAY,
            ReportType.CONFIRMED_TEST,
            day - DAYS_BEFORE_ONSET,
        )
        for day in range(days)
    ]


def gaen_export_bytes(keys: list[DiagnosisKey], hour: int, folder: Path, signing_key: SigningKey) -> tuple[int, int]:
    """Sizes of the signed export.zip a GAEN key server would publish for this hour's keys, and of its export.bin
    and export.sig unzipped."""
    source = [
        SourceKey(f"keys[{i}]", k.key_data, k.rolling_start, k.rolling_period, k.report_type, k.days_since_onset)
        for i, k in enumerate(keys)
    ]
    start = DAY + hour * 3600
    export_bin, export_sig = build_export(
        source, signing_key, region="VN", start_timestamp=start, end_timestamp=start + 3600
    )
    path = folder / f"export-{hour}.zip"
    write_export_zip(path, export_bin, export_sig)
    return path.stat().st_size, len(export_bin) + len(export_sig)


@dataclass
class Day:
    """A day of hourly batches as phones download them, and the GAEN files of the same keys."""

    cases: int
    days: int
    keys: int = 0
    elements: int = 0  # published elements: every interval of every published key
    hashes: int = 0  # distinct hashes the sections hold (the headers' counts)
    total_bytes: int = 0  # signed headers and bodies
    header_bytes: int = 0
    body_bytes: int = 0
    sections: int = 0
    error_rate: float = 0.0  # the largest budget rate of the day's batches (batches.budget_error_rate)
    gaen_zip: int = 0
    gaen_raw: int = 0
    hours: list[list[DiagnosisKey]] = field(default_factory=list)  # each hour's keys, for the lever table

    @property
    def bytes_per_case(self) -> float:
        return self.total_bytes / self.cases

    @property
    def bits_per_element(self) -> float:
        """All-in: signed headers and bodies over every published element."""
        return self.total_bytes * 8 / self.elements

    @property
    def log2_inv_eps(self) -> float:
        return math.log2(1 / self.error_rate)


def one_day(cases: int, days: int, folder: Path) -> Day:
    """Cuts a day of hourly batches for ``cases`` cases of ``days`` daily keys; what they and the GAEN exports
    weigh."""
    signing_key = generate_signing_key()
    store = SqliteStore(folder / "store.db")
    # The service's default anonymity hold: with 41 cases or more an hour, every hour's section has its 5 cases.
    publisher = Publisher(
        store, signing_key, retention_days=RETENTION_DAYS, publish_interval=PUBLISH_INTERVAL, max_keys_per_batch=200_000
    )
    day = Day(cases, days)
    published = []
    try:
        for hour in range(HOURS):
            at = DAY + (hour + 1) * 3600
            hour_cases = range(cases * hour // HOURS, cases * (hour + 1) // HOURS)
            keys = [key for case in hour_cases for key in case_keys(case, days)]
            day.hours.append(keys)
            for case in hour_cases:  # one submission a case, as the hold counts them
                store.submit(
                    Submission(
                        "ha", f"case-{case}", "VN", tuple(case_keys(case, days)), hashlib.sha256(b"%d" % case).digest()
                    ),
                    response=b"",
                    now=at,
                    retention_seconds=RETENTION_DAYS * 86400,
                )
            cut = publisher.publish(at).batches
            if len(cut) != 1 or cut[0].keys_published != len(keys):
                raise AssertionError(f"hour {hour}: expected one batch of its {len(keys)} keys, got {cut}")
            published += cut
            zipped, raw = gaen_export_bytes(keys, hour, folder, signing_key)
            day.gaen_zip, day.gaen_raw = day.gaen_zip + zipped, day.gaen_raw + raw
        stored = store.list_batches(after=0, limit=1000)
        # What a phone downloads, verified as a phone verifies it (signature, digest, every section's coding).
        trusted = TrustedKeys([signing_key.verifying_key()])
        opened = [
            open_batch(
                batch_pb2.SignedBatchHeader.FromString(b.signed_header),
                store.read_body(b.sequence, 0, b.body_size),
                trusted,
            )[0]
            for b in stored
        ]
    finally:
        store.close()
    if len(stored) != HOURS:
        raise AssertionError(f"expected {HOURS} batches, the store lists {len(stored)}")
    day.keys = sum(len(keys) for keys in day.hours)
    day.elements = sum(p.elements for p in published)
    day.header_bytes = sum(len(b.signed_header) for b in stored)
    day.body_bytes = sum(b.body_size for b in stored)
    day.total_bytes = day.header_bytes + day.body_bytes
    day.sections = sum(len(header.sections) for header in opened)
    day.hashes = sum(s.count for header in opened for s in header.sections)
    day.error_rate = max(budget_error_rate(header) for header in opened)
    return day


# --- Levers ---------------------------------------------------------------------------------------------------


def format_1_error_rate(filters_per_period: int) -> float:
    """Format 1's rate for each of a run's Bloom filters (docs/spec.md section 8, ``eps_format_1``): an alarm
    after 2 false matches anywhere in a day, each observation looked up at 3 intervals in every filter of the B
    batches retained; the day's false matches are Poisson with mean ``lambda = O x 3 x B x C x eps``, and
    ``P(>= 2) = 1 - e^-lambda (1 + lambda)`` is held to the daily budget. Format 1's publisher counted the filters
    its run actually published as C."""
    per_day = fprate.FALSE_ALARMS_PER_PHONE_YEAR / fprate.DAYS_PER_YEAR
    low, high = 0.0, 1.0
    for _ in range(200):  # bisection: P(>= 2) grows with lambda
        middle = (low + high) / 2
        if -math.expm1(-middle) - middle * math.exp(-middle) <= per_day:
            low = middle
        else:
            high = middle
    lookups = 3 * fprate.batches_retained(RETENTION_DAYS, PUBLISH_INTERVAL) * filters_per_period
    return low / (fprate.OBSERVATIONS_PER_DAY * lookups)


def format_1_classes(keys: list[DiagnosisKey]) -> dict[tuple[int, int], list[DiagnosisKey]]:
    """The keys of each format 1 filter: one per report type and infectiousness (format 1 also split by TX power
    class; the benchmark's keys carry none, so one class)."""
    classes: dict[tuple[int, int], list[DiagnosisKey]] = {}
    for key in keys:
        classes.setdefault((int(key.report_type), int(infectiousness_of(CONFIG, key.days_since_onset))), []).append(key)
    return classes


def bloom_bits(elements: int, error_rate: float) -> int:
    """The bits of pybloom-live's BloomFilter for ``elements`` at ``error_rate`` (its own sizing: k slices of
    ``ceil(n |ln eps| / (k ln^2 2))`` bits; a Bloom filter's size does not depend on what it holds)."""
    return BloomFilter(elements, error_rate).num_bits


def rice_bits(keys: list[DiagnosisKey], error_rate: float) -> int:
    """The bits of a Golomb-Rice coded set of these keys' element hashes in their own hash range, at this rate."""
    hash_range = hash_range_for(elements_of(keys), error_rate)
    return len(encode_set(key_hashes(keys, bytes(range(16)), hash_range)).data) * 8


def lever_rows(day: Day) -> tuple[list[dict], str]:
    """Each step from format 1 to format 2, applied to the day's hourly batches in turn: its structures, their
    rate, their bits per element and what the step saves."""
    eps = fprate.sizing().error_rate  # what the publisher gave each batch (one region an hour)
    eps_three = fprate.sizing(skew_seconds=INTERVAL_SECONDS).error_rate  # t = 3: both neighbours, always
    steps: list[tuple[str, str, str, int]] = []
    classes = [format_1_classes(keys) for keys in day.hours]
    counts = sorted({len(c) for c in classes})

    def per_class(size) -> int:
        """Bits of one structure per format 1 class, each at its share of the hour's budget (``share(keys, hour)``:
        n_c / N of the hour's elements, fprate.section_error_rate's division)."""
        return sum(
            size(keys, elements_of(keys) / elements_of([k for ks in hour.values() for k in ks]))
            for hour in classes
            for keys in hour.values()
        )

    format_1 = {len(hour): format_1_error_rate(len(hour)) for hour in classes}
    steps.append(
        (
            "format 1",
            "a Bloom filter per class, eps_1(C) each (pybloom-live's sizing)",
            f"{format_1[counts[-1]]:.3g}",
            sum(bloom_bits(elements_of(keys), format_1[len(hour)]) for hour in classes for keys in hour.values()),
        )
    )
    steps.append(
        (
            "+ coherent alarm rule (t = 3)",
            "a Bloom filter per class, eps_t3 x sqrt(n_c / N) each (pybloom-live)",
            f"{eps_three:.3g} x sqrt(n_c / N)",
            per_class(lambda keys, share: bloom_bits(elements_of(keys), eps_three * math.sqrt(share))),
        )
    )
    steps.append(
        (
            "+ tests near boundaries only (t = 1.4)",
            "a Bloom filter per class, eps x sqrt(n_c / N) each (pybloom-live)",
            f"{eps:.3g} x sqrt(n_c / N)",
            per_class(lambda keys, share: bloom_bits(elements_of(keys), eps * math.sqrt(share))),
        )
    )
    steps.append(
        (
            "+ Golomb-Rice instead of Bloom",
            "a coded set per class, eps x sqrt(n_c / N) each (matcher.filters, real hashes)",
            f"{eps:.3g} x sqrt(n_c / N)",
            per_class(lambda keys, share: rice_bits(keys, eps * math.sqrt(share))),
        )
    )
    steps.append(
        (
            "+ classes merged where the score does not differ (format 2)",
            "the publisher's batches: one section for this mix",
            f"{day.error_rate:.3g}",
            day.body_bytes * 8,
        )
    )

    rows, previous = [], None
    for lever, structure, rate, bits in steps:
        per_element = bits / day.elements
        per_case = per_element * ELEMENTS_8_DAY / 8
        rows.append(
            {
                "lever": lever,
                "structures": structure,
                "eps": rate,
                "bits/element": round(per_element, 2),
                "saves bits/element": round(previous[0] - per_element, 2) if previous else None,
                "bytes per 8-day case": round(per_case),
                "saves bytes per 8-day case": round(previous[1] - per_case) if previous else None,
            }
        )
        previous = (per_element, per_case)
    note = (
        f"Levers, each measured from the previous row, on the 8-day day at {day.cases:,} cases a day "
        f"({day.elements:,} elements in {HOURS} hourly batches of C = {'/'.join(map(str, counts))} format 1 classes: "
        "HIGH for days since onset -2..3, STANDARD for 4..5). Every row is a real structure's size: Bloom filters "
        "as pybloom-live sizes them, coded sets as matcher.filters codes these keys' element hashes, and the last "
        "row the publisher's own batch bodies; only the rates are computed, from fprate: format 1's rule "
        f"(eps_1(C) = {format_1_error_rate(counts[-1]):.4g} for C = {counts[-1]}, "
        f"{format_1_error_rate(84):.4g} for its worst case of 84 filters, {format_1_error_rate(1):.4g} for one "
        f"filter), the coherent rule with t = 3 (eps_t3 = {eps_three:.4g}, fprate.sizing(skew_seconds=600)) and "
        f"the default sizing (eps = {eps:.4g}). Per-class structures under the coherent rule share the hour's "
        "budget as format 2's sections do (eps_c = eps x sqrt(n_c / N), fprate.section_error_rate), so that a "
        "test pair's chance of a false pair of one class stays eps^2. Golomb-Rice comes before the merge so that "
        "each row changes one thing, and the merge is measured as the coded sets it replaces (between Bloom "
        "filters it would save 1.44 x 0.5 x H(n_c / N) bits an element: computed, not measured). Bytes per case count elements only; the signed headers add "
        f"{day.header_bytes / day.cases:.1f} bytes a case at this volume. Format 1 as main measured it: "
        f"{FORMAT_1_MEASURED}. Not in the table: skipping observations of weight 0 saves lookups on the phone, "
        "not bytes."
    )
    return rows, note


# --- The section ------------------------------------------------------------------------------------------------


def _row(day: Day, what: str, per_day: float, ours: float) -> dict:
    return {
        "case": f"{day.days} days",
        "cases/day": day.cases,
        "what": what,
        "bytes/case": round(per_day / day.cases),
        "MB per phone per day": round(per_day / 1e6, 3),
        "ours / this": round(ours / per_day, 2) if per_day != ours else None,
    }


def rows_of(day: Day) -> list[dict]:
    dp3t = fprate.DP3T_BYTES_PER_CASE * day.cases * day.days / 5
    dp3t_label = (
        f"DP-3T unlinkable design, {fprate.DP3T_BYTES_PER_CASE:,} bytes a 5-day case (baseline)"
        if day.days == 5
        else f"DP-3T unlinkable design, {fprate.DP3T_BYTES_PER_CASE:,} bytes a 5-day case scaled to "
        f"{day.days} days (baseline)"
    )
    ours = {
        **_row(day, "exposure matcher: signed headers + bodies", day.total_bytes, day.total_bytes),
        "bits/element": round(day.bits_per_element, 2),
        "log2(1/eps)": round(day.log2_inv_eps, 2),
    }
    return [ours] + [
        _row(day, what, per_day, day.total_bytes)
        for what, per_day in (
            ("GAEN export.zip per hourly batch, same keys (baseline)", day.gaen_zip),
            ("GAEN export.bin + export.sig unzipped, same keys (baseline)", day.gaen_raw),
            (f"GAEN, {fprate.GAEN_BYTES_PER_KEY} bytes a key (baseline)", fprate.GAEN_BYTES_PER_KEY * day.keys),
            (dp3t_label, dp3t),
        )
    ]


def run(quick: bool) -> list[Section]:
    plan = [(1_000, 5)] if quick else [(cases, days) for days in CASE_DAYS for cases in CASES_PER_DAY]
    days: dict[tuple[int, int], Day] = {}
    for cases, case_days in plan:
        with tempfile.TemporaryDirectory(prefix="bench-bandwidth-") as tmp:
            days[cases, case_days] = one_day(cases, case_days, Path(tmp))

    headline = days[1_000, 5]
    summary = {
        "bytes_per_case_5day": round(headline.bytes_per_case),
        "bits_per_element": round(headline.bits_per_element, 3),
        "log2_inv_eps": round(headline.log2_inv_eps, 3),
        "error_rate": float(f"{headline.error_rate:.4g}"),
    }
    rows, series = [], {}
    for (cases, case_days), day in days.items():
        rows += rows_of(day)
        summary[f"bandwidth_{cases}_cases_{case_days}day_bytes_per_case"] = round(day.bytes_per_case)
        summary[f"bandwidth_{cases}_cases_{case_days}day_mb_per_phone_day"] = round(day.total_bytes / 1e6, 3)
        series.setdefault(f"exposure matcher, {case_days}-day cases", []).append((cases, day.total_bytes / 1e6))
        if case_days == 8:
            series.setdefault("GAEN export.zip, 8-day cases", []).append((cases, day.gaen_zip / 1e6))
        else:
            series.setdefault("DP-3T, 5-day cases", []).append((cases, fprate.DP3T_BYTES_PER_CASE * cases / 1e6))

    five_day = [day for (_, case_days), day in days.items() if case_days == 5]
    worst = max(five_day, key=lambda day: day.bytes_per_case)
    loosest = max(days.values(), key=lambda day: day.bits_per_element / day.log2_inv_eps)
    bars = (
        f"Bars: a 5-day case at most {BYTES_PER_CASE_BAR:,} bytes (DP-3T's) at every volume (largest "
        f"{worst.bytes_per_case:,.0f} at {worst.cases:,} a day: {'met' if worst.bytes_per_case <= BYTES_PER_CASE_BAR else 'MISSED'}); "
        f"all-in bits per element at most {BITS_PER_ELEMENT_BAR} x log2(1/eps) (largest ratio "
        f"{loosest.bits_per_element / loosest.log2_inv_eps:.3f}, {loosest.days}-day cases at {loosest.cases:,} a day: "
        f"{'met' if loosest.bits_per_element <= BITS_PER_ELEMENT_BAR * loosest.log2_inv_eps else 'MISSED'}). "
    )
    notes = bars + (
        f"A case publishes its daily keys x 144 intervals: {5 * 144} elements for 5 days (days since onset -2..2), "
        f"{8 * 144:,} for 8 (-2..5). The day's cases are split over {HOURS} hourly batches cut by the publisher "
        "(matcher.publisher.Publisher over an SQLite store, default configuration, "
        f"{RETENTION_DAYS}-day retention, hourly publishing), one section a batch; every batch is then read back "
        "from the store and verified as a phone verifies it. Bits per element are all-in (signed headers and bodies "
        "over published elements); log2(1/eps) is that of the day's batches, from their headers (the square "
        f"root of the sum of their sections' (count / hash_range)^2, the largest of the day). Signed headers are {headline.header_bytes / HOURS:.0f} bytes a "
        "batch. A phone downloads every batch, so its daily bytes are all of them (plus a few bytes of gRPC "
        "framing, left out). GAEN: export.bin + export.sig, built by clients/ha/gaen_export.build_export from the "
        "same keys with report type and days since onset, one file an hour, zipped as phones download it and "
        "unzipped; and fprate.GAEN_BYTES_PER_KEY a key. DP-3T: fprate.DP3T_BYTES_PER_CASE for its 5 contagious "
        "days (480 identifiers in a Cuckoo filter), scaled by days next to 8-day cases. Unlinkability costs the "
        "ratio to GAEN: a GAEN phone can link a case's identifiers to one another, ours cannot."
    )
    sections = [
        Section(
            title="Bandwidth: bytes per case and per phone per day",
            rows=rows,
            notes=notes,
            summary=summary,
            formats={"bits/element": ".2f", "log2(1/eps)": ".2f"},
            curves=[]
            if quick
            else [
                Curve(
                    title="Bandwidth per phone per day",
                    x_label="confirmed cases a day",
                    y_label="MB per phone per day",
                    series=series,
                    log_x=True,
                    log_y=True,
                )
            ],
        )
    ]
    if not quick:
        lever_table, lever_note = lever_rows(days[LEVER_CASES, 8])
        sections.append(
            Section(
                title="Bandwidth: what each lever saves, from format 1 to format 2",
                rows=lever_table,
                notes=lever_note,
                formats={"bits/element": ".2f", "saves bits/element": ".2f"},
            )
        )
    return sections
